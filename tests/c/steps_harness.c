/* Host test of firmware/common/nd_steps.c (tests/test_steps.py builds it with ASan + UBSan): an engine double of three
 * steps reports its outputs through the recorder as the engine glues do, the timer advances 100 ticks per read.
 * Prints one line per run: "<flags> <stop> <stopped> <completed> <stop outputs> | ticks crc bytes per step"; the
 * Python side checks the CRCs against zlib.  Exit status 1 when a refusal that must happen does not. */
#include <stdio.h>
#include <string.h>

#include "nd_board.h"
#include "nd_steps.h"

static uint32_t clock_now;

uint32_t nd_board_timer_now(void)
{
    clock_now += 100u;
    return clock_now;
}

/* unused board functions of nd_board.h: the recorder needs only the timer */
void nd_board_init(void)
{
}
void nd_board_uart_write(const uint8_t *data, size_t n)
{
    (void)data;
    (void)n;
}
int nd_board_uart_read(void)
{
    return -1;
}
void nd_board_exit(int code)
{
    (void)code;
}

static uint8_t a[5] = {1, 2, 3, 4, 5}, b[3] = {9, 8, 7}, c[2] = {0xFF, 0x00};

/* step 0 writes a; step 1 writes b and c (a SPLIT); step 2 writes c.  Stops where the recorder says so. */
static void run_engine(void)
{
    nd_step_output_t outs[2] = {{a, sizeof(a)}, {c, sizeof(c)}};
    nd_steps_begin();
    if (nd_steps_done(0u, nd_board_timer_now(), outs, 1u)) {
        return;
    }
    outs[0].data = b;
    outs[0].bytes = sizeof(b);
    if (nd_steps_done(1u, nd_board_timer_now(), outs, 2u)) {
        return;
    }
    nd_steps_done(2u, nd_board_timer_now(), outs + 1, 1u);
}

static void report(uint8_t flags, uint32_t stop)
{
    uint32_t i;
    printf("%u %u %d %u %u |", (unsigned)flags, (unsigned)stop, nd_steps_stopped(), (unsigned)nd_steps_completed(),
           (unsigned)nd_steps_stop_outputs());
    for (i = 0u; i < nd_steps_count(); ++i) {
        const nd_step_record_t *r = nd_steps_record(i);
        printf(" %u %08x %u", (unsigned)r->ticks, (unsigned)r->crc, (unsigned)r->bytes);
    }
    printf("\n");
}

int main(void)
{
    static nd_step_record_t records[3];
    static const uint8_t runs[][2] = {
        {ND_STEPS_TIME, 0}, {ND_STEPS_CRC, 0}, {ND_STEPS_CRC | ND_STEPS_STOP, 1}, {ND_STEPS_STOP, 0}, {0, 0}};
    size_t k;
    int bad = 0;
    /* before init (a firmware without ND_PROFILE): nothing can be armed but a plain run */
    bad |= nd_steps_count() != 0u || nd_steps_arm(ND_STEPS_TIME, 0u) != -1 || nd_steps_arm(0u, 0u) != 0;
    nd_steps_init(records, 3u);
    bad |= nd_steps_arm(0x08u, 0u) != -1;         /* unknown flag */
    bad |= nd_steps_arm(ND_STEPS_STOP, 3u) != -1; /* stop past the last step */
    bad |= nd_steps_record(3u) != NULL || nd_steps_stop_output(0u) != NULL;
    for (k = 0; k < sizeof(runs) / sizeof(runs[0]); ++k) {
        bad |= nd_steps_arm(runs[k][0], runs[k][1]) != 0;
        run_engine();
        nd_steps_finish();
        report(runs[k][0], runs[k][1]);
        if (runs[k][0] & ND_STEPS_STOP) {
            const nd_step_output_t *o = nd_steps_stop_output(0u);
            bad |= o == NULL || nd_steps_stop_output(ND_STEPS_MAX_OUTPUTS) != NULL;
            bad |= nd_steps_stop_output(nd_steps_stop_outputs()) != NULL;
            if (runs[k][1] == 1u) {
                bad |= o == NULL || o->data != b || nd_steps_stop_output(1u)->data != c;
            }
            nd_steps_invalidate();
            bad |= nd_steps_stop_output(0u) != NULL;
        }
    }
    return bad;
}
