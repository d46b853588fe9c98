/* pc_relax.c — the CPU baseline of benchmarks/bench_workloads.py: one sample's predictive coding
 * relaxation (and, optionally, the local weight update after it) as a plain scalar C loop in
 * float64, the same arithmetic as pcforge.model.FloatPCN with the synchronous schedule.
 *
 * Layout (all row-major, concatenated over layers):
 *   n[0..L]          layer sizes
 *   act[0..L]        activation of each layer's f: 0 identity, 1 relu, 2 hardtanh, 3 tanh
 *   W                W_1..W_L, W_l is n[l] x n[l-1]
 *   b                b_1..b_L
 *   x                x_0..x_L (in: clamped layers' values; out: the state after T iterations)
 *   e                e_1..e_L (out: the errors of the final state)
 *   clamp[0..L]      1: layer held fixed
 *   work             scratch: 3 * sum(n) doubles
 * init_zero: free layers start at 0 (else at their feed-forward prediction, layer by layer).
 * Predictions from clamped layers are computed once (they cannot change without learning).
 * stop_exact: stop after an iteration that changed no x (only meaningful at rest, where the
 * float relaxation is exactly stationary); returns the iterations run.
 * learn: after the relaxation W_l += alpha e_l f(x_{l-1})^T, b_l += alpha e_l.
 *
 * Built by the benchmark with the C compiler the README already requires (cc -O2); called
 * through ctypes. Not part of the package: it exists to measure what a lean CPU loop costs.
 */
#include <math.h>
#include <string.h>

static double f(int a, double v) {
    switch (a) {
    case 1: return v > 0.0 ? v : 0.0;
    case 2: return v < -1.0 ? -1.0 : (v > 1.0 ? 1.0 : v);
    case 3: return tanh(v);
    default: return v;
    }
}

static double fprime(int a, double v) {
    switch (a) {
    case 1: return v > 0.0 ? 1.0 : 0.0;
    case 2: return (v > -1.0 && v < 1.0) ? 1.0 : 0.0;
    case 3: { double t = tanh(v); return 1.0 - t * t; }
    default: return 1.0;
    }
}

/* mu = W f(xp) + b for one connection (rows n_out, columns n_in); fx: scratch of n_in */
static void predict(int n_out, int n_in, int a, const double *W, const double *b,
                    const double *xp, double *fx, double *mu) {
    for (int j = 0; j < n_in; j++) fx[j] = f(a, xp[j]);
    for (int i = 0; i < n_out; i++) {
        const double *w = W + (long)i * n_in;
        double s = b[i];
        for (int j = 0; j < n_in; j++) s += w[j] * fx[j];
        mu[i] = s;
    }
}

int pc_relax(int L, const int *n, const int *act, double *W, double *b, double *x, double *e,
             const unsigned char *clamp, int init_zero, int T, double gamma, int stop_exact,
             int learn, double alpha, double *work) {
    int xo[64], wo[64], bo[64], eo[64];
    int tot = 0;
    if (L < 1 || L > 62) return -1;
    for (int l = 0, w = 0, bb = 0, ee = 0; l <= L; l++) {
        xo[l] = tot; tot += n[l];
        if (l >= 1) { wo[l] = w; w += n[l] * n[l - 1]; bo[l] = bb; bb += n[l]; eo[l] = ee; ee += n[l]; }
    }
    double *mu = work, *fx = work + tot, *fb = work + 2 * tot;   /* mu indexed like x */
    if (!clamp[0]) memset(x, 0, sizeof(double) * n[0]);   /* a free input starts at 0 */
    for (int l = 1; l <= L; l++) {
        if (clamp[l]) continue;
        if (init_zero) memset(x + xo[l], 0, sizeof(double) * n[l]);
        else predict(n[l], n[l - 1], act[l - 1], W + wo[l], b + bo[l], x + xo[l - 1], fx,
                     x + xo[l]);
    }
    for (int l = 1; l <= L; l++)              /* predictions from clamped layers: once */
        if (clamp[l - 1])
            predict(n[l], n[l - 1], act[l - 1], W + wo[l], b + bo[l], x + xo[l - 1], fx, mu + xo[l]);
    int t = 0;
    for (;;) {
        for (int l = 1; l <= L; l++) {        /* errors of the current state */
            if (!clamp[l - 1])
                predict(n[l], n[l - 1], act[l - 1], W + wo[l], b + bo[l], x + xo[l - 1], fx,
                        mu + xo[l]);
            for (int i = 0; i < n[l]; i++) e[eo[l] + i] = x[xo[l] + i] - mu[xo[l] + i];
        }
        if (t == T) break;
        int changed = 0;
        for (int l = 0; l <= L; l++) {        /* x_l += gamma (-e_l + f'(x_l) W_{l+1}^T e_{l+1}) */
            if (clamp[l]) continue;
            double *xl = x + xo[l];
            if (l < L) {
                memset(fb, 0, sizeof(double) * n[l]);
                const double *Wn = W + wo[l + 1], *en = e + eo[l + 1];
                for (int i = 0; i < n[l + 1]; i++) {
                    const double *w = Wn + (long)i * n[l];
                    double ei = en[i];
                    for (int j = 0; j < n[l]; j++) fb[j] += w[j] * ei;
                }
            }
            for (int j = 0; j < n[l]; j++) {
                double d = l >= 1 ? -e[eo[l] + j] : 0.0;
                if (l < L) d += fprime(act[l], xl[j]) * fb[j];
                double v = xl[j] + gamma * d;
                changed |= v != xl[j];
                xl[j] = v;
            }
        }
        t++;
        if (stop_exact && !changed) break;    /* every later iteration would repeat this one;
                                                 e already holds this state's errors */
    }
    if (learn)
        for (int l = 1; l <= L; l++) {
            double *Wl = W + wo[l];
            for (int j = 0; j < n[l - 1]; j++) fx[j] = f(act[l - 1], x[xo[l - 1] + j]);
            for (int i = 0; i < n[l]; i++) {
                double ae = alpha * e[eo[l] + i];
                double *w = Wl + (long)i * n[l - 1];
                for (int j = 0; j < n[l - 1]; j++) w[j] += ae * fx[j];
                b[bo[l] + i] += ae;
            }
        }
    return t;
}
