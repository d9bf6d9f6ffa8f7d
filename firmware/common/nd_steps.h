/* Per-step instrumentation of one inference, the same for both engines (verify --profile / --bisect; the messages
 * are in docs/protocol.md).
 *
 * The engine glue, compiled with ND_PROFILE, hands this module a static record per step (nd_steps_init) and reports
 * every step as it completes (nd_steps_done): the AOT engine from the hook the generated nd_model_run calls between
 * steps, TFLM from a wrapper around each op's registration.  The application arms each RUN (nd_steps_arm) with what
 * to record: the timer ticks of every step, the CRC-32 of every step's outputs, and/or a stop right after one step
 * (later steps are skipped, so that step's outputs stay in the arena for READ).  An op's outputs are still live right
 * after it ran, so the CRC needs no copy.  Nothing here allocates.
 *
 * Without ND_PROFILE no engine calls nd_steps_init: nd_steps_count() is 0, the application refuses instrumented
 * runs, and the inference itself contains no hook at all. */
#ifndef ND_STEPS_H
#define ND_STEPS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What an armed run records (RUN flags on the wire). */
#define ND_STEPS_TIME 0x01u /* timer ticks of each step */
#define ND_STEPS_CRC 0x02u  /* CRC-32 of each step's outputs */
#define ND_STEPS_STOP 0x04u /* stop after the given step; its outputs stay readable */
#define ND_STEPS_ALL (ND_STEPS_TIME | ND_STEPS_CRC | ND_STEPS_STOP)

/* Outputs of the stop step that stay addressable (an op with more keeps its first ones readable). */
#define ND_STEPS_MAX_OUTPUTS 8u

typedef struct {
    uint32_t ticks; /* timer ticks from the end of the previous step's bookkeeping to the end of this step */
    uint32_t crc;   /* zlib CRC-32 of the step's outputs, concatenated in output order */
    uint32_t bytes; /* total bytes of those outputs */
} nd_step_record_t;

typedef struct {
    const uint8_t *data;
    uint32_t bytes;
} nd_step_output_t;

/* ---- engine side ---- */

/* The engine's steps: one record each (static storage of the engine glue). */
void nd_steps_init(nd_step_record_t *records, uint32_t count);

/* 1 while an armed run is in progress: the hooks do nothing else when it is 0. */
int nd_steps_active(void);

/* The inference starts: time origin of step 0. */
void nd_steps_begin(void);

/* Step `step` completed at timer value `end` (read first thing after the step, so that gathering its outputs is
 * not counted) and wrote `outs`.  Returns 1 when the run must stop here (the stop step). */
int nd_steps_done(uint32_t step, uint32_t end, const nd_step_output_t *outs, uint32_t n);

/* 1 once the run has stopped: a TFLM wrapper then skips the remaining ops. */
int nd_steps_stopped(void);

/* ---- application side ---- */

/* Number of instrumented steps; 0 when the firmware was built without ND_PROFILE. */
uint32_t nd_steps_count(void);

/* Arm the next inference (flags 0: a plain run, no bookkeeping).  Clears the records.  -1 when flags has unknown
 * bits, or instrumentation is asked of a firmware without it, or the stop step is out of range. */
int nd_steps_arm(uint8_t flags, uint32_t stop_step);

/* The run is over (or never happened): hooks go idle, the records stay for nd_steps_record. */
void nd_steps_finish(void);

uint8_t nd_steps_flags(void);      /* flags of the last armed run */
uint32_t nd_steps_completed(void); /* steps the last run completed */

/* Record of a step of the last run, NULL when step >= nd_steps_count(). */
const nd_step_record_t *nd_steps_record(uint32_t step);

/* Output k of the step the last run stopped after, NULL when it did not stop or k is out of range; valid until the
 * arena changes (nd_steps_invalidate). */
const nd_step_output_t *nd_steps_stop_output(uint32_t k);
uint32_t nd_steps_stop_outputs(void);

/* The arena was written (upload, another run): the stop step's outputs are gone. */
void nd_steps_invalidate(void);

#ifdef __cplusplus
}
#endif

#endif /* ND_STEPS_H */
