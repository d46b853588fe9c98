// pcforge's host-link fuzz harness: byte streams into the Verilated HostLink + PCCore (the
// board's logic without the UART), driven from a host process over stdin/stdout (the runner is
// pcforge.boards.link_bench.LinkHarness; its tests feed it hypothesis-generated streams).
//
// Commands (stdin, little endian), each answered on stdout:
//   'R'                         reset: rst for 4 cycles, every memory of the core zeroed
//                               → u8 'r'
//   'S' u32 n, u64 seed, u32 ready_per_65536, u32 quiet, u32 max_cycles, n × (u8 byte, u32 gap)
//                               a stream: before byte k, `gap` cycles with rx idle (0xFFFFFFFF:
//                               until the link has been idle for 2 cycles); the byte is
//                               offered on rx for exactly one cycle (a UART has no flow
//                               control). tx.ready is high with the given probability per cycle
//                               (xorshift64*). After the last byte the clock runs until the
//                               link has been idle (no frame received or answered) for `quiet`
//                               cycles in a row, or `max_cycles` cycles have passed (a hang).
//                               → u8 's', u8 hung, u32 cycles, n × (u8 taken, u32 cycle),
//                                 u32 m, m × (u8 byte, u32 cycle)   [the bytes sent on tx]
//   'D'                         dump → u8 'd', u32 n, n × i64: every word of every memory in
//                               the order of memories.inc (signed as stored)
//   'Q'                         quit
// (Verilator escapes the ports' "__" as "___05F".)
// Cycle numbers count clock cycles since the last reset; a byte is `taken` when the link was
// in a receiving state in the cycle it was offered.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "verilated.h"
#include "Vpcforge_link_bench.h"
#include "Vpcforge_link_bench___024root.h"

namespace {

using Top = Vpcforge_link_bench;

bool read_exact(void *p, size_t n) { return std::fread(p, 1, n, stdin) == n; }
template <class T> T get() {
    T v{};
    if (!read_exact(&v, sizeof v)) std::exit(0);
    return v;
}
template <class T> void put(const T &v) { std::fwrite(&v, sizeof v, 1, stdout); }
const uint32_t UNTIL_IDLE = 0xFFFFFFFFu;   // a gap that lasts until the link is idle

}  // namespace

// Generated per design (pcforge.boards.link_bench): for_each_memory(top, f) calls f(array,
// depth, width) for every memory of the core.
#include "memories.inc"

int main() {
    auto ctx = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Top>(ctx.get());
    uint64_t cycle = 0;
    auto tick = [&]() {
        top->clk = 1; top->eval(); cycle++;
        top->clk = 0; top->eval();
    };
    top->clk = 0; top->rst = 0; top->rx___05Fvalid = 0; top->rx___05Fpayload = 0; top->tx___05Fready = 0;
    top->eval();
    for (;;) {
        int c = std::fgetc(stdin);
        if (c == EOF || c == 'Q') break;
        if (c == 'R') {
            top->rst = 1; top->rx___05Fvalid = 0; top->tx___05Fready = 0;
            for (int k = 0; k < 4; ++k) tick();
            top->rst = 0;
            for_each_memory(top.get(), [](auto &mem, int depth, int) {
                for (int a = 0; a < depth; ++a) mem[a] = 0;
            });
            top->eval();
            cycle = 0;
            put<uint8_t>('r');
        } else if (c == 'S') {
            uint32_t n = get<uint32_t>();
            uint64_t rng = get<uint64_t>() * 0x9E3779B97F4A7C15ULL + 1;
            uint32_t ready_p = get<uint32_t>(), quiet = get<uint32_t>(), max_cycles = get<uint32_t>();
            std::vector<uint8_t> bytes(n);
            std::vector<uint32_t> gaps(n);
            for (uint32_t k = 0; k < n; ++k) { bytes[k] = get<uint8_t>(); gaps[k] = get<uint32_t>(); }
            std::vector<uint8_t> taken(n);
            std::vector<uint32_t> at(n);
            std::vector<uint8_t> tx;
            std::vector<uint32_t> tx_at;
            uint64_t start = cycle;
            // one cycle: inputs set (clk low, settled), outputs sampled, then the rising edge
            auto step = [&](int rx_byte) {
                rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
                uint32_t r = uint32_t((rng * 0x2545F4914F6CDD1DULL) >> 48);
                top->tx___05Fready = r < ready_p;
                top->rx___05Fvalid = rx_byte >= 0;
                top->rx___05Fpayload = rx_byte >= 0 ? uint8_t(rx_byte) : 0;
                top->eval();
                bool took = top->receiving;
                if (top->tx___05Fvalid && top->tx___05Fready) {
                    tx.push_back(top->tx___05Fpayload);
                    tx_at.push_back(uint32_t(cycle));
                }
                tick();
                return took;
            };
            bool hung = false;
            for (uint32_t k = 0; k < n && !hung; ++k) {
                if (gaps[k] == UNTIL_IDLE) {        // until the link has been idle 2 cycles
                    uint64_t t0 = cycle;
                    for (uint32_t still = 0; still < 2;) {
                        step(-1);
                        still = top->idle ? still + 1 : 0;
                        if (cycle - t0 > max_cycles) { hung = true; break; }
                    }
                } else {
                    for (uint32_t g = 0; g < gaps[k]; ++g) step(-1);
                }
                at[k] = uint32_t(cycle);
                taken[k] = step(bytes[k]);
            }
            uint32_t still = 0;
            uint64_t drain_start = cycle;
            while (!hung && still < quiet) {
                step(-1);
                still = top->idle ? still + 1 : 0;
                if (cycle - drain_start > max_cycles) { hung = true; break; }
            }
            top->rx___05Fvalid = 0; top->tx___05Fready = 0; top->eval();
            put<uint8_t>('s');
            put<uint8_t>(hung);
            put<uint32_t>(uint32_t(cycle - start));
            for (uint32_t k = 0; k < n; ++k) { put<uint8_t>(taken[k]); put<uint32_t>(at[k]); }
            put<uint32_t>(uint32_t(tx.size()));
            for (size_t k = 0; k < tx.size(); ++k) { put<uint8_t>(tx[k]); put<uint32_t>(tx_at[k]); }
        } else if (c == 'D') {
            std::vector<int64_t> words;
            for_each_memory(top.get(), [&](auto &mem, int depth, int width) {
                for (int a = 0; a < depth; ++a) {
                    uint64_t v = uint64_t(mem[a]) & ((width >= 64) ? ~0ULL : ((1ULL << width) - 1));
                    int64_t s = (width < 64 && (v >> (width - 1)) & 1) ? int64_t(v) - (int64_t(1) << width)
                                                                      : int64_t(v);
                    words.push_back(s);
                }
            });
            put<uint8_t>('d');
            put<uint32_t>(uint32_t(words.size()));
            std::fwrite(words.data(), 8, words.size(), stdout);
        } else {
            std::fprintf(stderr, "link harness: unknown command %d\n", c);
            return 2;
        }
        std::fflush(stdout);
    }
    top->final();
    return 0;
}
