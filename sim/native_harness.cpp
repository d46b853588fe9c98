// pcforge's compiled host harness: replays one host program per core against the Verilated
// model of the emitted Verilog and writes every read-back word in bulk (the fast path of
// pcforge.sim.native_sim; the program format is pcforge.sim.host_program's).
//
// Usage: harness PROGRAM RESULT [MAX_CYCLES_PER_OP]
//
// PROGRAM (little-endian uint32): magic 'PCHP', version, n_cores, then per core: seed (2 words),
// stall probability in 1/65536, the payload words of host_write / host_read / control, the
// program length N and N words of ops:
//   0 END | 1 WRITE payload.. | 2 READ payload.. | 3 CONTROL payload.. | 4 WAIT target |
//   5 JUMP target | 6 CYCLES | 7 PEEK
// WAIT holds until `paused` or `done`; it appends 1 and jumps to target when done, else
// appends 0. READ appends the read_data word; CYCLES appends the core's cycle counter; PEEK
// appends every word of the core's weight and bias memories as they are (no clock cycle).
// RESULT (little-endian int64): total clock cycles, then per core the count and the values.
//
// Every core runs its program concurrently on the one clock. A stream beat moves on a rising
// edge where valid and ready are both high; sources hold valid until then, as AXI-Stream and
// Amaranth's lib.stream require. With a stall probability, sources insert idle cycles and the
// read_data sink withholds ready at random (xorshift64*, seeded per core).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "verilated.h"
#include "Vpcforge_core.h"

namespace {

// Verilator stores a port of up to 8/16/32/64 bits as CData/SData/IData/QData and a wider one as
// VlWide<N> (N 32-bit words); `put` copies little-endian 32-bit payload words into either.
template <class T> void put(T &port, const uint32_t *w, int nw) {
    uint64_t v = w[0];
    if (nw > 1 && sizeof(T) > 4) v |= uint64_t(w[1]) << 32;
    port = static_cast<T>(v);
}
template <std::size_t N> void put(VlWide<N> &port, const uint32_t *w, int nw) {
    for (std::size_t i = 0; i < N; ++i) port[i] = (int(i) < nw) ? w[i] : 0;
}

struct CorePorts {
    // payloads: any width (see put); called once per beat
    std::function<void(const uint32_t *, int)> write_payload, read_payload, control_payload;
    // 1-bit stream handshakes and status (CData), the read word and the cycle counter (IData)
    CData *write_valid, *read_valid, *control_valid, *data_ready;
    CData *write_ready, *read_ready, *control_ready, *data_valid, *paused, *done;
    IData *data_payload, *cycles;
    // every word of every weight and bias memory, raw, in the order of ports.inc (no cycles)
    std::function<void(std::vector<int64_t> &)> peek_weights;
};

}  // namespace

// Generated per design (pcforge.sim.native_sim): binds every core's ports.
#include "ports.inc"

namespace {

enum Op : uint32_t { END = 0, WRITE = 1, READ = 2, CONTROL = 3, WAIT = 4, JUMP = 5, CYCLES = 6,
                     PEEK = 7 };
const char *OP_NAMES[] = {"END", "WRITE", "READ", "CONTROL", "WAIT", "JUMP", "CYCLES", "PEEK"};

struct Driver {
    int index = 0;
    CorePorts io;
    std::vector<uint32_t> prog;
    size_t pc = 0;
    int nw_write = 0, nw_read = 0, nw_control = 0;
    uint64_t rng = 1;
    uint32_t stall = 0;          // probability of an idle cycle, in 1/65536
    std::vector<int64_t> out;
    bool ended = false;
    bool read_requested = false;  // READ: the request beat has moved, waiting for the word
    bool valid_up = false;        // a source holds valid (it then holds it until the beat moves)
    uint64_t op_cycles = 0;       // cycles spent in the current op
    int data_ready = 0;           // READ: the ready driven on read_data this cycle

    bool idle_now() {
        if (!stall) return false;
        rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
        return ((rng * 2685821657736338717ULL) >> 48) < stall;
    }
    int payload_words(uint32_t op) const {
        return op == WRITE ? nw_write : op == READ ? nw_read : op == CONTROL ? nw_control : 0;
    }
    void next() {
        uint32_t op = prog[pc];
        pc += 1 + (op == WAIT || op == JUMP ? 1 : payload_words(op));
        read_requested = valid_up = false;
        op_cycles = 0;
        data_ready = 0;
    }

    // Before the rising edge: run the ops that take no cycle, then drive this cycle's inputs.
    void drive() {
        *io.write_valid = 0; *io.read_valid = 0; *io.control_valid = 0; *io.data_ready = 0;
        for (;;) {
            if (pc >= prog.size()) { ended = true; return; }
            uint32_t op = prog[pc];
            if (op == END) { ended = true; return; }
            if (op == CYCLES) { out.push_back(int64_t(*io.cycles)); next(); continue; }
            if (op == PEEK) { io.peek_weights(out); next(); continue; }
            if (op == JUMP) { pc = prog[pc + 1]; continue; }
            if (op == WAIT) {
                if (*io.done) { out.push_back(1); pc = prog[pc + 1]; op_cycles = 0; continue; }
                if (*io.paused) { out.push_back(0); next(); continue; }
                return;
            }
            const uint32_t *payload = &prog[pc + 1];
            if (op == READ && read_requested) {
                data_ready = idle_now() ? 0 : 1;     // random back-pressure on read_data
                *io.data_ready = CData(data_ready);
                return;
            }
            if (!valid_up) {
                if (idle_now()) return;                 // an idle cycle before the beat
                valid_up = true;                        // payload set once, held until it moves
                int nw = payload_words(op);
                if (op == WRITE) io.write_payload(payload, nw);
                if (op == READ) io.read_payload(payload, nw);
                if (op == CONTROL) io.control_payload(payload, nw);
            }
            if (op == WRITE) *io.write_valid = 1;
            if (op == READ) *io.read_valid = 1;
            if (op == CONTROL) *io.control_valid = 1;
            return;
        }
    }

    // With the inputs settled, just before the rising edge: which beat moves on it.
    int moving = 0;   // 1: the op's source beat, 2: a read_data word (value in `word`)
    int64_t word = 0;
    void sample() {
        moving = 0;
        if (ended || pc >= prog.size()) return;
        uint32_t op = prog[pc];
        if (op == READ && read_requested) {
            if (data_ready && *io.data_valid) { moving = 2; word = int64_t(int32_t(*io.data_payload)); }
            return;
        }
        if (!valid_up) return;
        int ready = op == WRITE ? *io.write_ready : op == READ ? *io.read_ready
                  : op == CONTROL ? *io.control_ready : 0;
        if (ready) moving = 1;
    }

    // After the rising edge.
    void advance() {
        if (ended) return;
        op_cycles++;
        if (moving == 1) {
            if (prog[pc] == READ) { read_requested = true; valid_up = false; op_cycles = 0; }
            else next();
        } else if (moving == 2) {
            out.push_back(word);
            next();
        }
    }
};

std::vector<uint32_t> read_words(const char *path) {
    FILE *f = std::fopen(path, "rb");
    if (!f) { std::fprintf(stderr, "harness: cannot open program %s\n", path); std::exit(2); }
    std::vector<uint32_t> v;
    uint32_t buf[4096];
    size_t n;
    while ((n = std::fread(buf, 4, 4096, f)) > 0) v.insert(v.end(), buf, buf + n);
    std::fclose(f);
    return v;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 3) { std::fprintf(stderr, "usage: %s PROGRAM RESULT [MAX_CYCLES_PER_OP]\n", argv[0]); return 2; }
    uint64_t max_op_cycles = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 50000000ULL;
    std::vector<uint32_t> w = read_words(argv[1]);
    size_t at = 0;
    auto take = [&]() -> uint32_t {
        if (at >= w.size()) { std::fprintf(stderr, "harness: program %s is truncated\n", argv[1]); std::exit(2); }
        return w[at++];
    };
    if (take() != 0x50484350u || take() != 1u) { std::fprintf(stderr, "harness: %s is not a version-1 host program\n", argv[1]); return 2; }
    uint32_t n_cores = take();

    auto ctx = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vpcforge_core>(ctx.get());
    std::vector<CorePorts> ports = bind_ports(top.get());
    if (n_cores != ports.size()) {
        std::fprintf(stderr, "harness: the program has %u cores, the model %zu\n", n_cores, ports.size());
        return 2;
    }
    std::vector<Driver> drv(n_cores);
    for (uint32_t k = 0; k < n_cores; ++k) {
        Driver &d = drv[k];
        d.index = int(k);
        d.io = ports[k];
        uint64_t lo = take(), hi = take();
        d.rng = (hi << 32 | lo) * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
        if (!d.rng) d.rng = 1;
        d.stall = take();
        d.nw_write = int(take()); d.nw_read = int(take()); d.nw_control = int(take());
        uint32_t n = take();
        if (at + n > w.size()) { std::fprintf(stderr, "harness: core %u's program is truncated\n", k); return 2; }
        d.prog.assign(w.begin() + at, w.begin() + at + n);
        at += n;
    }

    // One clock cycle: the inputs change with the falling edge (clk = 0, one eval settles
    // them), the outputs are sampled, and the rising edge moves every beat (a second eval).
    uint64_t cycles = 0;
    auto rise = [&]() { top->clk = 1; top->eval(); cycles++; };
    top->rst = 1;
    for (auto &d : drv) {
        *d.io.write_valid = 0; *d.io.read_valid = 0; *d.io.control_valid = 0; *d.io.data_ready = 0;
    }
    for (int k = 0; k < 2; ++k) { top->clk = 0; top->eval(); rise(); }
    top->rst = 0;
    for (;;) {
        bool running = false;
        for (auto &d : drv) {
            if (!d.ended) d.drive();
            running |= !d.ended;
        }
        if (!running) break;
        top->clk = 0; top->eval();
        for (auto &d : drv) d.sample();
        rise();
        for (auto &d : drv) {
            d.advance();
            if (!d.ended && d.op_cycles > max_op_cycles) {
                uint32_t op = d.prog[d.pc];
                std::fprintf(stderr, "harness: core %d: %s at program word %zu did not complete "
                             "within %llu cycles (cycle %llu)\n", d.index, op < 7 ? OP_NAMES[op] : "?",
                             d.pc, (unsigned long long)max_op_cycles, (unsigned long long)cycles);
                return 3;
            }
        }
    }
    top->final();

    FILE *f = std::fopen(argv[2], "wb");
    if (!f) { std::fprintf(stderr, "harness: cannot write %s\n", argv[2]); return 2; }
    int64_t total = int64_t(cycles);
    std::fwrite(&total, 8, 1, f);
    for (auto &d : drv) {
        int64_t n = int64_t(d.out.size());
        std::fwrite(&n, 8, 1, f);
        std::fwrite(d.out.data(), 8, d.out.size(), f);
    }
    std::fclose(f);
    return 0;
}
