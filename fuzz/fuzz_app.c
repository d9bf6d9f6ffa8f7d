/* libFuzzer target for the device application (firmware/common/nd_app.c) built for the host: the fuzz input is
 * the byte stream the host sends.  Properties: no crash or sanitizer report whatever arrives, and everything the
 * device sends back is a sequence of well-formed frames (checked with the protocol parser).
 * The board layer, engine and generated tables here are harness doubles; nd_app.c, nd_protocol.c, nd_steps.c
 * (the step instrumentation) and nd_postprocess.c are the real code. */
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define main nd_app_main
#include "nd_app.c" /* included for its static state, reset before every input */
#undef main

static const uint8_t *fuzz_data;
static size_t fuzz_size, fuzz_pos;
static uint32_t fuzz_clock;
static jmp_buf fuzz_done;
static nd_parser_t out_parser;
static uint8_t out_payload[ND_PROTO_MAX_PAYLOAD];

static void must(int cond)
{
    if (!cond) {
        abort();
    }
}

/* ---- board double: UART from the fuzz input, output checked frame by frame ---- */
void nd_board_init(void)
{
}

void nd_board_uart_write(const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        int r = nd_parser_feed(&out_parser, data[i]);
        must(r == ND_PARSE_MORE || r == ND_PARSE_FRAME);
        /* the device only starts a frame with the sync bytes */
        must(nd_parser_busy(&out_parser) || r == ND_PARSE_FRAME);
    }
}

int nd_board_uart_read(void)
{
    if (fuzz_pos >= fuzz_size) {
        longjmp(fuzz_done, 1);
    }
    /* 0xFF 0xFE: a pause on the line, long enough for the device to drop a partial frame */
    if (fuzz_pos + 1 < fuzz_size && fuzz_data[fuzz_pos] == 0xFFu && fuzz_data[fuzz_pos + 1] == 0xFEu) {
        fuzz_pos += 2;
        fuzz_clock += ND_FRAME_DEADLINE_TICKS + 1u;
        return -1;
    }
    return fuzz_data[fuzz_pos++];
}

uint32_t nd_board_timer_now(void)
{
    return ++fuzz_clock;
}

void nd_board_exit(int code)
{
    (void)code;
    longjmp(fuzz_done, 1);
}

/* ---- engine double: outputs are a cheap function of the input, computed in instrumented steps ---- */
static int8_t engine_input[INPUT_BYTES];
static int8_t engine_scores[SCORES_BYTES], engine_boxes[BOXES_BYTES];
#define ENGINE_STEPS 3u
static nd_step_record_t engine_step_records[ENGINE_STEPS];

int nd_engine_init(void)
{
    nd_steps_init(engine_step_records, ENGINE_STEPS);
    return 0;
}
int8_t *nd_engine_input(void)
{
    return engine_input;
}
const int8_t *nd_engine_scores(void)
{
    return engine_scores;
}
const int8_t *nd_engine_boxes(void)
{
    return engine_boxes;
}
const char *nd_engine_name(void)
{
    return "fuzz";
}
uint32_t nd_engine_arena_bytes(void)
{
    return sizeof(engine_input);
}

/* Three steps as the engine glues report them (nd_steps.h): scores, boxes, then both outputs at once. */
int nd_engine_invoke(void)
{
    uint32_t i, h = 2166136261u;
    nd_step_output_t outs[2] = {{(const uint8_t *)engine_scores, SCORES_BYTES},
                                {(const uint8_t *)engine_boxes, BOXES_BYTES}};
    nd_steps_begin();
    for (i = 0; i < 64u; ++i) {
        h = (h ^ (uint8_t)engine_input[i * 4799u]) * 16777619u;
    }
    for (i = 0; i < SCORES_BYTES; ++i) {
        engine_scores[i] = (int8_t)((h = h * 1103515245u + 12345u) >> 24);
    }
    if (nd_steps_done(0u, nd_board_timer_now(), outs, 1u)) {
        return 0;
    }
    for (i = 0; i < BOXES_BYTES; ++i) {
        engine_boxes[i] = (int8_t)((h = h * 1103515245u + 12345u) >> 24);
    }
    if (nd_steps_done(1u, nd_board_timer_now(), outs + 1, 1u) || nd_steps_done(2u, nd_board_timer_now(), outs, 2u)) {
        return 0;
    }
    /* a failing invoke, to exercise that path: an int8 upload starting with 0xEE (a constant the fuzzer's
     * comparison tracing finds) */
    return (uint8_t)engine_input[0] == 0xEEu ? -1 : 0;
}

/* ---- generated-file doubles ---- */
static const uint8_t image0[INPUT_BYTES];
static const uint8_t image1[INPUT_BYTES] = {255, 0, 128};
const uint8_t *const nd_images[] = {image0, image1};
const char *const nd_image_names[] = {"zeros", "mostly-zeros"};
const int8_t nd_input_lut[3][256] = {{-128, 127}, {0, 1}, {5, -5}};

#define E8 16777216u, 12000000u, 8000000u, 5000000u, 3000000u, 2000000u, 1000000u, 500000u
#define E64 E8, E8, E8, E8, E8, E8, E8, E8
const nd_post_params_t nd_post_params = {
    .exp_table = {E64, E64, E64, E64},
    .score_threshold_q = 60,
    .max_out = 100,
    .iou_num = 1,
    .iou_den = 2,
    .grid_h = 10,
    .grid_w = 10,
    .stride = 32,
    .input_h = 320,
    .input_w = 320,
    .num_classes = 80,
    .num_bins = 8,
    .coord_frac_bits = 8,
    .scores_row_stride = 800,
    .scores_col_stride = 80,
    .scores_class_stride = 1,
    .boxes_row_stride = 320,
    .boxes_col_stride = 32,
    .boxes_side_stride = 8,
    .boxes_bin_stride = 1,
};

/* The input is a script of records, turned into the byte stream the device receives:
 *   0: n u8, n raw bytes (garbage, partial frames)   1: type, seq u16, length u16, payload (framed with a good CRC;
 *      with bit 7 of the record byte set, protocol version 2: the device must refuse it)
 *   2: a pause (the device's frame timeout passes)   3: n u16, n raw bytes (whole recorded frames, e.g. golden ones)
 * so the fuzzer reaches every request handler instead of stopping at the CRC.  The stream holds a whole session:
 * a 307200-byte upload in 4 KB frames plus the requests around it (fuzz/make_seeds.py, run with -max_len=400000). */
static uint8_t stream[1u << 19];

static size_t build_stream(const uint8_t *data, size_t size)
{
    size_t pos = 0, out = 0;
    while (pos < size) {
        const uint8_t record = data[pos++];
        const uint8_t kind = record % 4u;
        if ((kind == 0u && pos < size) || (kind == 3u && size - pos >= 2u)) {
            size_t n = data[pos++];
            if (kind == 3u) {
                n |= (size_t)data[pos++] << 8;
            }
            if (n > size - pos) {
                n = size - pos;
            }
            if (n > sizeof(stream) - out) {
                break;
            }
            memcpy(stream + out, data + pos, n);
            pos += n;
            out += n;
        } else if (kind == 1u && size - pos >= 5u) {
            uint8_t type = data[pos];
            uint16_t seq = (uint16_t)(data[pos + 1] | (data[pos + 2] << 8));
            size_t len = (size_t)(data[pos + 3] | (data[pos + 4] << 8)) % (ND_PROTO_MAX_PAYLOAD + 1u);
            size_t n;
            pos += 5u;
            if (len > size - pos) {
                len = size - pos;
            }
            n = nd_frame_encode(stream + out, sizeof(stream) - out, type, seq, data + pos, len);
            if (n == 0u) {
                break;
            }
            if ((record & 0x80u) != 0u) { /* another protocol version, with a CRC that matches it */
                uint32_t crc;
                stream[out + 2u] = 2u;
                crc = nd_crc32(0u, stream + out + 2u, n - 2u - ND_PROTO_CRC_BYTES);
                memcpy(stream + out + n - ND_PROTO_CRC_BYTES, &crc, sizeof(crc)); /* little-endian host */
            }
            pos += len;
            out += n;
        } else if (kind == 2u && sizeof(stream) - out >= 2u) {
            stream[out++] = 0xFFu;
            stream[out++] = 0xFEu;
        } else {
            break;
        }
    }
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(&app, 0, sizeof(app));
    fuzz_data = stream;
    fuzz_size = build_stream(data, size);
    fuzz_pos = 0;
    nd_parser_init(&out_parser, out_payload, sizeof(out_payload));
    if (setjmp(fuzz_done) == 0) {
        nd_app_main();
    }
    must(!nd_parser_busy(&out_parser)); /* never half a frame out */
    return 0;
}
