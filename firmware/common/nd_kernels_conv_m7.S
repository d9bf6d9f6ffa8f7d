/* nd_conv3x2_run on Cortex-M7 (ARMv7E-M, DSP extension): the conv microkernel of nd_kernels_fast.h, whose portable C
 * twin in nd_kernels_conv.c defines the arithmetic; this file only schedules it.  In assembly because the hot loop
 * needs all 14 general registers (six accumulators, three pixels' inputs, two weights, two pointers and the loop end)
 * and GCC spills when it allocates them itself.
 *
 * Per pixel triple: the k4 input bytes of each pixel (from the input segments) are sign-extended into xe, six words
 * per 4 taps (SXTB16 of the three pixels' words, then of the words rotated by 8: taps (t, t+2), then (t+1, t+3)).  Then per block of two
 * output channels:
 *   r0-r5   accumulators (pixel 0 channel c, c+1, pixel 1 c, c+1, pixel 2 c, c+1), loaded from the stream's bias
 *   r6      xe pointer            r7  stream pointer (bias, weights, requantisation constants, in that order)
 *   r8-r10  the three pixels' halfword pairs of one pair of taps       r11, r12  the two channels' weight pairs
 *   lr      end of xe
 * Each pair of taps is one LDM, one LDRD and six SMLADs; the MAC body is unrolled 8 groups of 4 taps deep and entered
 * part-way (Duff's device) so that any k4 runs with a loop test every 32 taps (k4 <= 32: a copy without it).  With
 * int8 weights (w8) the stream holds both channels' four taps in two words, extended in the loop, and the doubling of
 * the accumulator goes to the inputs (SADD16 in the extension).  Then the six accumulators are requantised (see
 * nd_kernels_fast.h) with
 *   r6 output pointer, r8 output pixel step, r9 table, r10-r12 mult/round/rsh, lr the value.
 */
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

/* nd_conv3x2_args_t field offsets */
    .equ A_SEGS, 0
    .equ A_SEGS_END, 4
    .equ A_O, 8
    .equ A_OSTEP, 12
    .equ A_N, 16
    .equ A_XE, 20
    .equ A_W, 24
    .equ A_WEND, 28
    .equ A_K4, 32
    .equ A_LUT, 36
    .equ A_CSTRIDE, 40
    .equ A_W8, 44

/* the frame below the saved registers; O, OSTEP and LUT first so that one LDM restores them */
    .equ F_O, 0        /* output of the current block */
    .equ F_OSTEP, 4
    .equ F_LUT, 8
    .equ F_XE, 12
    .equ F_XEEND, 16   /* F_XE, F_XEEND: one LDRD */
    .equ F_PAD, 20     /* unused: keeps the frame's size (with the 9 saved registers, 96 bytes: 8-byte aligned) */
    .equ F_MAC, 24     /* entry into the unrolled MAC body (Thumb address) */
    .equ F_REQ, 28     /* requantisation variant (Thumb address) */
    .equ F_W, 32
    .equ F_SEGS, 36    /* the input segments (their x advanced as triples are done) */
    .equ F_SEGS_END, 40
    .equ F_N, 44       /* triples left */
    .equ F_OTRIPLE, 48 /* output of the current triple */
    .equ F_EXT, 52     /* the input extension (Thumb address): int16 weights, or int8 with the inputs doubled */
    .equ FRAME, 60

/* One pair of taps: the three pixels' pairs from xe, the two channels' weight pairs, six SMLADs (32 bytes). */
    .macro TAPS
    ldm.w   r6!, {r8, r9, r10}
    ldrd    r11, r12, [r7], #8
    smlad   r0, r8, r11, r0
    smlad   r1, r8, r12, r1
    smlad   r2, r9, r11, r2
    smlad   r3, r9, r12, r3
    smlad   r4, r10, r11, r4
    smlad   r5, r10, r12, r5
    .endm

/* The same with int8 weights: one LDRD gives both channels' four taps, SXTB16 extends them in place (80 bytes). */
    .macro TAPS8
    ldm.w   r6!, {r8, r9, r10}
    ldrd    r11, r12, [r7]
    sxtb16  r11, r11
    sxtb16  r12, r12
    smlad   r0, r8, r11, r0
    smlad   r1, r8, r12, r1
    smlad   r2, r9, r11, r2
    smlad   r3, r9, r12, r3
    smlad   r4, r10, r11, r4
    smlad   r5, r10, r12, r5
    ldm.w   r6!, {r8, r9, r10}
    ldrd    r11, r12, [r7], #8
    sxtb16  r11, r11, ror #8
    sxtb16  r12, r12, ror #8
    smlad   r0, r8, r11, r0
    smlad   r1, r8, r12, r1
    smlad   r2, r9, r11, r2
    smlad   r3, r9, r12, r3
    smlad   r4, r10, r11, r4
    smlad   r5, r10, r12, r5
    .endm

/* Requantise accumulator \acc and store it at \addr, through the table (r9) or saturated to int8. */
    .macro OUT_LUT acc, addr:vararg
    smmlar  lr, \acc, r10, r11
    add.w   lr, lr, \acc, asr #31
    asr.w   lr, lr, r12
    usat    lr, #8, lr
    ldrb.w  lr, [r9, lr]
    strb.w  lr, \addr
    .endm

    .macro OUT_SAT acc, addr:vararg
    smmlar  lr, \acc, r10, r11
    add.w   lr, lr, \acc, asr #31
    asr.w   lr, lr, r12
    ssat    lr, #8, lr
    strb.w  lr, \addr
    .endm

/* The two channels of the block for the three pixels (pixel 1 and 2 at o + step and o + 2 step), then the next block
 * or the end of the triple.  \cs is the output channel stride. */
    .macro REQUANT out, cs
    ldm     sp, {r6, r8, r9}
    ldm     r7!, {r10, r11, r12}
    \out    r4, [r6, r8, lsl #1]
    \out    r2, [r6, r8]
    \out    r0, [r6], #\cs
    ldm     r7!, {r10, r11, r12}
    \out    r5, [r6, r8, lsl #1]
    \out    r3, [r6, r8]
    \out    r1, [r6], #\cs
    str     r6, [sp, #F_O]
    tst     r12, #0x80000000            /* c+1's rsh word: another block follows */
    bne     .Lblock
    b       .Ltriple_end
    .endm

    .global nd_conv3x2_run
    .type nd_conv3x2_run, %function
    .thumb_func
nd_conv3x2_run:
    push    {r4-r11, lr}
    sub     sp, #FRAME
    ldrd    r2, r3, [r0, #A_SEGS]
    strd    r2, r3, [sp, #F_SEGS]
    ldrd    r2, r3, [r0, #A_O]
    str     r2, [sp, #F_OTRIPLE]
    str     r3, [sp, #F_OSTEP]
    ldr     r2, [r0, #A_N]
    str     r2, [sp, #F_N]
    ldr     r2, [r0, #A_XE]
    ldr     r3, [r0, #A_K4]
    add     r1, r3, r3, lsl #1
    add     r1, r2, r1, lsl #1          /* xe + 6 k4 */
    strd    r2, r1, [sp, #F_XE]
    ldr     r1, [r0, #A_W]              /* (w_end is for the C twin: the stream flags its last block) */
    str     r1, [sp, #F_W]
    /* MAC entry: skip (8 - groups % 8) % 8 groups of the unrolled body, 64 bytes each (80 with int8 weights); up to
     * 8 groups (k4 <= 32: the stem, the 24-channel 1x1s) take the copy of the body without the loop test */
    lsrs    r3, r3, #2
    cmp     r3, #8
    ite     ls
    movls   r4, #1
    movhi   r4, #0
    rsb     r3, r3, #0
    and     r3, r3, #7
    ldr     r2, [r0, #A_W8]
    cmp     r2, #0
    bne     2f
    adr     r1, .Lmac
    cbz     r4, 1f
    adr     r1, .Lmac_once
1:  add     r1, r1, r3, lsl #6
    adr     r2, .Lextend16
    b       3f
2:  adr     r1, .Lmac8
    cbz     r4, 1f
    adr     r1, .Lmac8_once
1:  add     r1, r1, r3, lsl #6
    add     r1, r1, r3, lsl #4
    adr     r2, .Lextend8
3:  orr     r1, r1, #1
    str     r1, [sp, #F_MAC]
    orr     r2, r2, #1
    str     r2, [sp, #F_EXT]
    /* requantisation variant: table or saturation, channel stride 1 or 2 */
    ldr     r2, [r0, #A_LUT]
    str     r2, [sp, #F_LUT]
    ldr     r3, [r0, #A_CSTRIDE]
    adr     r1, .Lreq_table
    cmp     r2, #0
    it      eq
    addeq   r1, r1, #8
    cmp     r3, #2
    it      eq
    addeq   r1, r1, #4
    ldr     r1, [r1]
    str     r1, [sp, #F_REQ]

.Ltriple:
    /* extend the triple's inputs, segment by segment: per word of 4 taps, the three pixels' words as (t, t+2) pairs,
     * then (t+1, t+3) pairs (with int8 weights doubled: SADD16) */
    ldr     r8, [sp, #F_XE]
    ldr     r9, [sp, #F_SEGS]
    ldr     pc, [sp, #F_EXT]

    .macro EXTEND double
1:  ldm     r9, {r6, r7, r12}           /* x, step, words */
    add     r10, r7, r7, lsl #1
    add     r10, r6, r10
    str     r10, [r9], #12              /* the next triple's x */
    add     r12, r6, r12, lsl #2        /* the end of pixel 0's words */
2:  ldr     r10, [r6, r7]
    ldr     r11, [r6, r7, lsl #1]
    ldr     lr, [r6], #4
    sxtb16  r0, lr
    sxtb16  r1, r10
    sxtb16  r2, r11
    sxtb16  r3, lr, ror #8
    sxtb16  r4, r10, ror #8
    sxtb16  r5, r11, ror #8
    .if \double
    sadd16  r0, r0, r0
    sadd16  r1, r1, r1
    sadd16  r2, r2, r2
    sadd16  r3, r3, r3
    sadd16  r4, r4, r4
    sadd16  r5, r5, r5
    .endif
    stm     r8!, {r0-r5}
    cmp     r6, r12
    bne     2b
    ldr     r10, [sp, #F_SEGS_END]
    cmp     r9, r10
    bne     1b
    b       .Lextended
    .endm

.Lextend16:
    EXTEND  0
.Lextend8:
    EXTEND  1

.Lextended:
    ldr     r0, [sp, #F_OTRIPLE]
    str     r0, [sp, #F_O]
    ldr     r7, [sp, #F_W]

.Lblock:
    ldm     r7!, {r0-r5}
    ldrd    r6, lr, [sp, #F_XE]
    ldr     pc, [sp, #F_MAC]

/* One group of 4 taps with int16 weights: two pairs (64 bytes). */
    .macro GROUP16
    TAPS
    TAPS
    .endm

/* The MAC body at \label: 8 groups (\group, \bytes each: the entry arithmetic relies on it), then with \loop the
 * loop test every 32 taps, and the jump to the requantisation. */
    .macro MAC_BODY label, group, bytes, loop
    .balign 4
\label:
    .rept 8
    \group
    .endr
    .if (. - \label) != 8 * \bytes
    .error "a MAC body's groups must be of the size the entry arithmetic assumes"
    .endif
    .if \loop
    cmp     r6, lr
    bne     \label
    .endif
    ldr     pc, [sp, #F_REQ]
    .endm

    MAC_BODY .Lmac, GROUP16, 64, 1
    MAC_BODY .Lmac8, TAPS8, 80, 1
    MAC_BODY .Lmac_once, GROUP16, 64, 0   /* k4 <= 32: a single pass */
    MAC_BODY .Lmac8_once, TAPS8, 80, 0

.Lreq_lut1:
    REQUANT OUT_LUT, 1
.Lreq_lut2:
    REQUANT OUT_LUT, 2
.Lreq_sat1:
    REQUANT OUT_SAT, 1
.Lreq_sat2:
    REQUANT OUT_SAT, 2

.Ltriple_end:
    ldr     r0, [sp, #F_OTRIPLE]
    ldr     r1, [sp, #F_OSTEP]
    add     r1, r1, r1, lsl #1
    add     r0, r0, r1
    str     r0, [sp, #F_OTRIPLE]
    ldr     r0, [sp, #F_N]
    subs    r0, r0, #1
    str     r0, [sp, #F_N]
    bne     .Ltriple
    add     sp, #FRAME
    pop     {r4-r11, pc}

    .balign 4
.Lreq_table:
    .word   .Lreq_lut1 + 1, .Lreq_lut2 + 1, .Lreq_sat1 + 1, .Lreq_sat2 + 1
    .size nd_conv3x2_run, . - nd_conv3x2_run

#endif
