/* The depthwise microkernels of nd_kernels_fast.h on Cortex-M7 (ARMv7E-M, DSP extension); their C twins in
 * nd_kernels_dwconv.c define the arithmetic.
 *
 * nd_dw_pairs_s1_run: the stride-1 depthwise microkernel,
 * one output row of every channel, two outputs per step:
 * per kernel row, the four taps x0..x3 as two words (x0, x1), (x2, x3) and the weights as (w0, w1), (w1, w2):
 *   out0 += x0 w0 + x1 w1 (SMLAD) + w2 x2 (SMLATB),    out1 += w0 x1 (SMLABT) + x2 w1 + x3 w2 (SMLAD).
 * Registers in the loop: r0-r2 the channel's three ring rows, r3/r4 two tap pairs, r5/r6 two weight pairs, r7/r8 the
 * two accumulators, r9 the channel's constants, r10 the output, r11 the output pixel step, r12 the end of row r0,
 * lr the bias.  Requantisation as nd_conv3x2_run's, the two outputs side by side in r3-r6 (the table's address, when
 * there is one, loaded from the frame once the round constant is spent), then saturated to int8 or through the table. */
#ifndef ND_KERNELS_REFERENCE_ONLY /* as in nd_kernels.h, which is C */
#define ND_KERNELS_REFERENCE_ONLY 0
#endif

#if !ND_KERNELS_REFERENCE_ONLY && defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__)

    .syntax unified
    .thumb
#ifdef ND_KERNELS_CODE_SECTION /* a board's fast code memory (see nd_kernels_fast.h) */
    .section ND_KERNELS_CODE_SECTION, "ax", %progbits
#else
    .text
#endif

/* nd_dw_pairs_args_t field offsets */
    .equ A_R0, 0
    .equ A_PLANE, 12
    .equ A_Q, 16
    .equ A_O, 20
    .equ A_OSTEP, 24
    .equ A_N, 28
    .equ A_CHANNELS, 32
    .equ A_LUT, 36

/* the frame: the current channel's rows (one LDM), then the rest */
    .equ F_R0, 0
    .equ F_PLANE, 12
    .equ F_Q, 16
    .equ F_O, 20
    .equ F_OSTEP, 24
    .equ F_N, 28
    .equ F_CHANNELS, 32
    .equ F_LUT, 36
    .equ FRAME, 40

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

/* requantise the pair's accumulators r7, r8 (channel constants at r9) and store them at [r10] and [r10, r11]:
 * saturated to int8, or (\lut) through the table */
    .macro OUT2 lut
    ldrd    r3, r4, [r9, #28]           /* mult, round */
    smmlar  r5, r7, r3, r4
    smmlar  r6, r8, r3, r4
    add.w   r5, r5, r7, asr #31
    add.w   r6, r6, r8, asr #31
    ldr     r3, [r9, #36]               /* rsh */
    asr.w   r5, r5, r3
    asr.w   r6, r6, r3
    .if \lut
    ldr     r4, [sp, #F_LUT]
    usat    r5, #8, r5
    usat    r6, #8, r6
    ldrb    r5, [r4, r5]
    ldrb    r6, [r4, r6]
    .else
    ssat    r5, #8, r5
    ssat    r6, #8, r6
    .endif
    strb.w  r5, [r10]
    strb.w  r6, [r10, r11]
    .endm

/* every channel's output row, saturated (\lut 0) or through the table (\lut 1) */
    .macro CHANNELS lut
1:  ldm     sp, {r0, r1, r2}
    ldr     r9, [sp, #F_Q]
    ldr     r10, [sp, #F_O]
    ldr     r11, [sp, #F_OSTEP]
    ldr     r12, [sp, #F_N]
    ldr     lr, [r9, #24]               /* bias2 */
    add     r12, r0, r12, lsl #1        /* two outputs per word of r0 */
2:  ROW     r0, 0, 1
    ROW     r1, 8, 0
    ROW     r2, 16, 0
    OUT2    \lut
    add     r10, r10, r11, lsl #1
    cmp     r0, r12
    bne     2b
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
    bne     1b
    add     sp, #FRAME
    pop     {r4-r11, pc}
    .endm

    .global nd_dw_pairs_s1_run
    .type nd_dw_pairs_s1_run, %function
    .thumb_func
nd_dw_pairs_s1_run:
    push    {r4-r11, lr}
    sub     sp, #FRAME
    ldm     r0, {r1-r8}                 /* r0, r1, r2, plane, q, o, o_step, n */
    stm     sp, {r1-r8}
    ldrd    r1, r2, [r0, #A_CHANNELS]   /* channels, lut */
    strd    r1, r2, [sp, #F_CHANNELS]
    cmp     r2, #0
    bne     .Lchannels_lut
    CHANNELS 0
.Lchannels_lut:
    CHANNELS 1
    .size nd_dw_pairs_s1_run, . - nd_dw_pairs_s1_run

/* nd_dw4_run on Cortex-M7: ND_KERNEL_DWCONV3X3_SMLA's microkernel (nd_kernels_fast.h; C twin in nd_kernels_dwconv.c),
 * no table.  Per window, per block of four channels: the nine taps as words of four channels, each split by SXTB16
 * into halfword pairs (c0, c2), (c1, c3) and multiplied lane by lane (SMLABB/SMLATT) with the stream's weight pairs.
 * Registers: r0-r2 the window's three rows (at the block's channels), r3 the tap step, r4-r7 the accumulators, r8 a
 * tap word (then its odd lanes), r9 its even lanes, r10/r11 a weight pair, r12 the stream, lr the output.  Per row
 * the taps are read as 1, 2, then 0 with a post-increment, which leaves the row pointer on the next block. */
    .equ D_WIN, 0
    .equ D_ROW, 4
    .equ D_PS, 8
    .equ D_STEP, 12
    .equ D_W, 16
    .equ D_O, 20
    .equ D_OSTEP, 24
    .equ D_N, 28
    .equ D_CHANNELS, 32
/* frame */
    .equ G_WIN, 0      /* the current window */
    .equ G_ROW, 4
    .equ G_PS, 8
    .equ G_STEP, 12
    .equ G_W, 16
    .equ G_O, 20       /* the current window's output */
    .equ G_OSTEP, 24
    .equ G_N, 28       /* windows left */
    .equ G_CHANNELS, 32
    .equ G_OEND, 36    /* end of the current window's output */
    .equ GFRAME, 40

    .macro TAP4 addr:vararg
    ldr     r8, \addr
    ldrd    r10, r11, [r12], #8
    sxtb16  r9, r8
    sxtb16  r8, r8, ror #8
    smlabb  r4, r9, r10, r4
    smlatt  r6, r9, r10, r6
    smlabb  r5, r8, r11, r5
    smlatt  r7, r8, r11, r7
    .endm

    .macro OUT4 acc
    ldm     r12!, {r8, r9, r10}
    smmlar  r11, \acc, r8, r9
    add.w   r11, r11, \acc, asr #31
    asr.w   r11, r11, r10
    ssat    r11, #8, r11
    strb.w  r11, [lr], #1
    .endm

    .global nd_dw4_run
    .type nd_dw4_run, %function
    .thumb_func
nd_dw4_run:
    push    {r4-r11, lr}
    sub     sp, #GFRAME
    ldm     r0, {r1-r9}                 /* win, row, ps, step, w, o, o_step, n, channels */
    stm     sp, {r1-r9}
.Lwindow:
    ldm     sp, {r0, r1, r3}            /* win, row, ps */
    add     r2, r0, r1, lsl #1
    add     r1, r0, r1
    ldr     r12, [sp, #G_W]
    ldr     lr, [sp, #G_O]
    ldr     r4, [sp, #G_CHANNELS]
    add     r4, lr, r4
    str     r4, [sp, #G_OEND]
.Lblock4:
    ldm     r12!, {r4-r7}               /* bias2 */
    TAP4    [r0, r3]
    TAP4    [r0, r3, lsl #1]
    TAP4    [r0], #4
    TAP4    [r1, r3]
    TAP4    [r1, r3, lsl #1]
    TAP4    [r1], #4
    TAP4    [r2, r3]
    TAP4    [r2, r3, lsl #1]
    TAP4    [r2], #4
    OUT4    r4
    OUT4    r5
    OUT4    r6
    OUT4    r7
    ldr     r8, [sp, #G_OEND]
    cmp     lr, r8
    bne     .Lblock4
    /* the next window */
    ldr     r0, [sp, #G_WIN]
    ldr     r1, [sp, #G_STEP]
    add     r0, r0, r1
    str     r0, [sp, #G_WIN]
    ldr     r0, [sp, #G_O]
    ldr     r1, [sp, #G_OSTEP]
    add     r0, r0, r1
    str     r0, [sp, #G_O]
    ldr     r0, [sp, #G_N]
    subs    r0, r0, #1
    str     r0, [sp, #G_N]
    bne     .Lwindow
    add     sp, #GFRAME
    pop     {r4-r11, pc}
    .size nd_dw4_run, . - nd_dw4_run

#endif
