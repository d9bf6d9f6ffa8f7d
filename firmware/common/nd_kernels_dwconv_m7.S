/* nd_dw_pairs_s1_run on Cortex-M7 (ARMv7E-M, DSP extension): the stride-1 depthwise microkernel of nd_kernels_fast.h,
 * whose C twin in nd_kernels_dwconv.c defines the arithmetic.  One output row of every channel, two outputs per step:
 * per kernel row, the four taps x0..x3 as two words (x0, x1), (x2, x3) and the weights as (w0, w1), (w1, w2):
 *   out0 += x0 w0 + x1 w1 (SMLAD) + w2 x2 (SMLATB),    out1 += w0 x1 (SMLABT) + x2 w1 + x3 w2 (SMLAD).
 * Registers in the loop: r0-r2 the channel's three ring rows, r3/r4 two tap pairs, r5/r6 two weight pairs, r7/r8 the
 * two accumulators, r9 the channel's constants, r10 the output, r11 the output pixel step, r12 the end of row r0,
 * lr the bias.  Requantisation as nd_conv3x2_run's, saturated to int8 (no table: the generator keeps ops with one on
 * the C path). */
#ifndef ND_KERNELS_REFERENCE_ONLY /* as in nd_kernels.h, which is C */
#define ND_KERNELS_REFERENCE_ONLY 0
#endif

#if !ND_KERNELS_REFERENCE_ONLY && defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__)

    .syntax unified
    .thumb
    .text

/* nd_dw_pairs_args_t field offsets */
    .equ A_R0, 0
    .equ A_PLANE, 12
    .equ A_Q, 16
    .equ A_O, 20
    .equ A_OSTEP, 24
    .equ A_N, 28
    .equ A_CHANNELS, 32

/* the frame: the current channel's rows (one LDM), then the rest */
    .equ F_R0, 0
    .equ F_PLANE, 12
    .equ F_Q, 16
    .equ F_O, 20
    .equ F_OSTEP, 24
    .equ F_N, 28
    .equ F_CHANNELS, 32
    .equ FRAME, 36

/* one kernel row: taps from \row, weight pairs at [r9, #\w] */
    .macro ROW row, w, first
    ldrd    r3, r4, [\row], #4
    ldrd    r5, r6, [r9, #\w]
    .if \first
    smlad   r7, r3, r5, lr
    smlabt  r8, r5, r3, lr
    .else
    smlad   r7, r3, r5, r7
    smlabt  r8, r5, r3, r8
    .endif
    smlatb  r7, r6, r4, r7
    smlad   r8, r4, r6, r8
    .endm

/* requantise accumulator \acc (constants in r3-r5) and store it at \addr */
    .macro OUT acc, addr:vararg
    smmlar  r6, \acc, r3, r4
    add.w   r6, r6, \acc, asr #31
    asr.w   r6, r6, r5
    ssat    r6, #8, r6
    strb.w  r6, \addr
    .endm

    .global nd_dw_pairs_s1_run
    .type nd_dw_pairs_s1_run, %function
    .thumb_func
nd_dw_pairs_s1_run:
    push    {r4-r11, lr}
    sub     sp, #FRAME
    ldm     r0, {r1-r8}                 /* r0, r1, r2, plane, q, o, o_step, n */
    stm     sp, {r1-r8}
    ldr     r1, [r0, #A_CHANNELS]
    str     r1, [sp, #F_CHANNELS]
.Lchannel:
    ldm     sp, {r0, r1, r2}
    ldr     r9, [sp, #F_Q]
    ldr     r10, [sp, #F_O]
    ldr     r11, [sp, #F_OSTEP]
    ldr     r12, [sp, #F_N]
    ldr     lr, [r9, #24]               /* bias2 */
    add     r12, r0, r12, lsl #1        /* two outputs per word of r0 */
.Lpair:
    ROW     r0, 0, 1
    ROW     r1, 8, 0
    ROW     r2, 16, 0
    ldrd    r3, r4, [r9, #28]           /* mult, round */
    ldr     r5, [r9, #36]               /* rsh */
    OUT     r7, [r10]
    OUT     r8, [r10, r11]
    add     r10, r10, r11, lsl #1
    cmp     r0, r12
    bne     .Lpair
    /* the next channel: its rows one plane on, its constants, its output byte */
    ldm     sp, {r0, r1, r2}
    ldr     r3, [sp, #F_PLANE]
    add     r0, r0, r3
    add     r1, r1, r3
    add     r2, r2, r3
    stm     sp, {r0, r1, r2}
    ldr     r0, [sp, #F_Q]
    add     r0, r0, #40
    str     r0, [sp, #F_Q]
    ldr     r0, [sp, #F_O]
    add     r0, r0, #1
    str     r0, [sp, #F_O]
    ldr     r0, [sp, #F_CHANNELS]
    subs    r0, r0, #1
    str     r0, [sp, #F_CHANNELS]
    bne     .Lchannel
    add     sp, #FRAME
    pop     {r4-r11, pc}
    .size nd_dw_pairs_s1_run, . - nd_dw_pairs_s1_run

#endif
