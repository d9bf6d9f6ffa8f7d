/* Per-step instrumentation of one inference (nd_steps.h). */
#include "nd_steps.h"

#include <stddef.h>
#include <string.h>

#include "nd_board.h"
#include "nd_protocol.h" /* nd_crc32 */

typedef struct {
    nd_step_record_t *records;
    uint32_t count;
    uint8_t flags;
    int active;
    int stopped;
    uint32_t stop_step;
    uint32_t completed;
    uint32_t mark; /* timer at the start of the current step */
    nd_step_output_t stop_outputs[ND_STEPS_MAX_OUTPUTS];
    uint32_t stop_count;
} steps_state_t;

static steps_state_t st;

void nd_steps_init(nd_step_record_t *records, uint32_t count)
{
    memset(&st, 0, sizeof(st));
    st.records = records;
    st.count = records != NULL ? count : 0u;
    if (st.count > 0u) {
        memset(records, 0, (size_t)count * sizeof(*records));
    }
}

uint32_t nd_steps_count(void)
{
    return st.count;
}

int nd_steps_arm(uint8_t flags, uint32_t stop_step)
{
    if ((flags & ~ND_STEPS_ALL) != 0u || (flags != 0u && st.count == 0u) ||
        ((flags & ND_STEPS_STOP) != 0u && stop_step >= st.count)) {
        return -1;
    }
    st.flags = flags;
    st.active = flags != 0u;
    st.stopped = 0;
    st.stop_step = stop_step;
    st.completed = 0u;
    st.stop_count = 0u;
    if (st.count > 0u) {
        memset(st.records, 0, (size_t)st.count * sizeof(*st.records));
    }
    return 0;
}

void nd_steps_finish(void)
{
    st.active = 0;
}

int nd_steps_active(void)
{
    return st.active;
}

int nd_steps_stopped(void)
{
    return st.stopped;
}

void nd_steps_begin(void)
{
    st.mark = nd_board_timer_now();
}

int nd_steps_done(uint32_t step, uint32_t end, const nd_step_output_t *outs, uint32_t n)
{
    nd_step_record_t *rec;
    uint32_t i, crc = 0u, bytes = 0u;
    if (!st.active || st.stopped || step >= st.count) {
        return st.stopped;
    }
    rec = &st.records[step];
    if (st.flags & ND_STEPS_TIME) {
        rec->ticks = end - st.mark;
    }
    for (i = 0u; i < n; ++i) {
        bytes += outs[i].bytes;
        if ((st.flags & ND_STEPS_CRC) && outs[i].data != NULL) {
            crc = nd_crc32(crc, outs[i].data, outs[i].bytes);
        }
    }
    rec->bytes = bytes;
    rec->crc = crc;
    st.completed = step + 1u;
    if ((st.flags & ND_STEPS_STOP) && step == st.stop_step) {
        st.stop_count = n < ND_STEPS_MAX_OUTPUTS ? n : ND_STEPS_MAX_OUTPUTS;
        for (i = 0u; i < st.stop_count; ++i) {
            st.stop_outputs[i] = outs[i];
        }
        st.stopped = 1;
        return 1;
    }
    st.mark = nd_board_timer_now(); /* the CRC above is not the next step's time */
    return 0;
}

uint8_t nd_steps_flags(void)
{
    return st.flags;
}

uint32_t nd_steps_completed(void)
{
    return st.completed;
}

const nd_step_record_t *nd_steps_record(uint32_t step)
{
    return step < st.count ? &st.records[step] : NULL;
}

uint32_t nd_steps_stop_outputs(void)
{
    return st.stopped ? st.stop_count : 0u;
}

const nd_step_output_t *nd_steps_stop_output(uint32_t k)
{
    return k < nd_steps_stop_outputs() && st.stop_outputs[k].data != NULL ? &st.stop_outputs[k] : NULL;
}

void nd_steps_invalidate(void)
{
    st.stop_count = 0u;
}
