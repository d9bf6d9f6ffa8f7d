/* The device application, the same for every board and engine: answer the host's requests over the link
 * (docs/protocol.md).  Nothing that arrives from the host is trusted: every index, offset and length is
 * checked against the buffer it addresses before it is used. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nd_board.h"
#include "nd_board_config.h"
#include "nd_engine.h"
#include "nd_images.h"
#include "nd_model_config.h"
#include "nd_postprocess.h"
#include "nd_protocol.h"
#include "nd_steps.h"

/* Shapes are fixed by the model family (nd_engine.h); the host checks them against the model it holds. */
#define IN_H 320u
#define IN_W 320u
#define IN_C 3u
#define GRID 10u
#define NUM_CLASSES 80u
#define BOX_CHANNELS 32u
#define INPUT_BYTES (IN_H * IN_W * IN_C)
#define SCORES_BYTES (GRID * GRID * NUM_CLASSES)
#define BOXES_BYTES (GRID * GRID * BOX_CHANNELS)
#define DETECTION_BYTES 20u
#define DATA_HEADER_BYTES 5u  /* region u8 + offset u32 in front of DATA bytes */
#define STEP_RECORD_BYTES 12u /* ticks, CRC, bytes: u32 each */
#define STEPS_HEADER_BYTES 9u /* total u16, completed u16, flags u8, first u16, count u16 */

/* A frame still incomplete this long after its sync byte is dropped: twice the air time of the largest frame at
 * the link's baud rate plus a quarter second, in timer ticks (one cycle per emulated instruction on the
 * emulator).  Measured from the frame's start, not its last byte, because a host that keeps retrying would
 * otherwise keep a frame with a corrupted length alive for ever.  Capped below half the 32-bit timer range. */
#define ND_TICKS_PER_SECOND ((uint64_t)ND_CORE_CLOCK_HZ / ND_TIMER_UNITS_PER_TICK)
#ifndef ND_FRAME_DEADLINE_TICKS
#define ND_FRAME_DEADLINE_TICKS_RAW                                                                                    \
    (ND_TICKS_PER_SECOND / 4u + ND_TICKS_PER_SECOND * 2u * 10u * ND_PROTO_MAX_FRAME / ND_UART_BAUD)
#define ND_FRAME_DEADLINE_TICKS                                                                                        \
    ((uint32_t)(ND_FRAME_DEADLINE_TICKS_RAW > 0x7FFFFFFFu ? 0x7FFFFFFFu : ND_FRAME_DEADLINE_TICKS_RAW))
#endif

typedef struct {
    uint8_t rx_payload[ND_PROTO_MAX_PAYLOAD];
    uint8_t tx_frame[ND_PROTO_MAX_FRAME];
    size_t tx_len; /* last response, resent as-is when its request is repeated (lost reply) */
    int tx_cached;
    uint8_t tx_request_type;
    uint16_t tx_request_seq;
    int engine_status;   /* nd_engine_init result; requests that need the engine fail while < 0 */
    uint8_t upload_kind; /* ND_UPLOAD_* of the input being uploaded, 0 when none */
    uint32_t upload_received;
    int outputs_valid; /* scores/boxes hold the last RUN's outputs */
    nd_detection_t detections[ND_MAX_DETECTIONS];
} app_state_t;

static app_state_t app;

static nd_writer_t begin_response(void)
{
    nd_writer_t w;
    nd_writer_init(&w, app.tx_frame + ND_PROTO_HEADER_BYTES, ND_PROTO_MAX_PAYLOAD);
    return w;
}

static void send_error(const nd_parser_t *req, uint16_t code, const char *text);

static void send_response(const nd_parser_t *req, uint8_t type, const nd_writer_t *w)
{
    if (w->error) { /* never send a truncated reply: say so instead */
        send_error(req, ND_ERR_MALFORMED, "reply does not fit a frame");
        return;
    }
    app.tx_len = nd_frame_encode(app.tx_frame, sizeof(app.tx_frame), type, req->seq,
                                 app.tx_frame + ND_PROTO_HEADER_BYTES, w->len);
    app.tx_cached = app.tx_len > 0u;
    app.tx_request_type = req->type;
    app.tx_request_seq = req->seq;
    if (app.tx_len > 0u) {
        nd_board_uart_write(app.tx_frame, app.tx_len);
    }
}

static void send_error(const nd_parser_t *req, uint16_t code, const char *text)
{
    nd_writer_t w = begin_response();
    nd_put_u16(&w, code);
    nd_put_u8(&w, req->type);
    nd_put_str(&w, text);
    send_response(req, ND_MSG_ERROR, &w);
}

static void put_tensor(nd_writer_t *w, uint16_t h, uint16_t wd, uint16_t c, uint32_t scale_bits, int32_t zp)
{
    nd_put_u8(w, 4u);
    nd_put_u16(w, 1u);
    nd_put_u16(w, h);
    nd_put_u16(w, wd);
    nd_put_u16(w, c);
    nd_put_u32(w, scale_bits);
    nd_put_u32(w, (uint32_t)zp);
}

static void handle_hello(const nd_parser_t *req)
{
    nd_writer_t w = begin_response();
    nd_put_u8(&w, ND_PROTO_VERSION);
    nd_put_str(&w, ND_BOARD_NAME);
    nd_put_str(&w, nd_engine_name());
    nd_put_str(&w, ND_FIRMWARE_VERSION);
    nd_put_str(&w, ND_MODEL_SHA256_HEX);
    nd_put_str(&w, ND_TIMER_KIND);
    nd_put_u32(&w, ND_CORE_CLOCK_HZ);
    nd_put_u32(&w, ND_TIMER_UNITS_PER_TICK);
    nd_put_u32(&w, nd_engine_arena_bytes());
    nd_put_u32(&w, ND_UART_BAUD);
    nd_put_u32(&w, (uint32_t)app.engine_status);
    nd_put_u16(&w, (uint16_t)ND_NUM_IMAGES);
    nd_put_u16(&w, (uint16_t)ND_PROTO_MAX_PAYLOAD);
    nd_put_u16(&w, (uint16_t)ND_MAX_DETECTIONS);
    put_tensor(&w, IN_H, IN_W, IN_C, ND_INPUT_SCALE_BITS, ND_INPUT_ZERO_POINT);
    put_tensor(&w, GRID, GRID, NUM_CLASSES, ND_SCORES_SCALE_BITS, ND_SCORES_ZERO_POINT);
    put_tensor(&w, GRID, GRID, BOX_CHANNELS, ND_BOXES_SCALE_BITS, ND_BOXES_ZERO_POINT);
    send_response(req, ND_MSG_INFO, &w);
}

static const uint8_t *embedded_image(uint32_t index)
{
#if ND_NUM_IMAGES > 0
    if (index < (uint32_t)ND_NUM_IMAGES) {
        return nd_images[index];
    }
#else
    (void)index;
#endif
    return NULL;
}

static const char *embedded_image_name(uint32_t index)
{
#if ND_NUM_IMAGES > 0
    if (index < (uint32_t)ND_NUM_IMAGES) {
        return nd_image_names[index];
    }
#else
    (void)index;
#endif
    return "";
}

static void handle_image_info(const nd_parser_t *req)
{
    nd_reader_t r;
    uint16_t index;
    nd_writer_t w;
    nd_reader_init(&r, req->payload, req->length);
    index = nd_get_u16(&r);
    if (r.error || nd_reader_left(&r) != 0u) {
        send_error(req, ND_ERR_MALFORMED, "IMAGE_INFO wants a u16 index");
        return;
    }
    if (embedded_image(index) == NULL) {
        send_error(req, ND_ERR_INDEX, "no embedded image with that index");
        return;
    }
    w = begin_response();
    nd_put_u16(&w, index);
    nd_put_u32(&w, INPUT_BYTES);
    nd_put_str(&w, embedded_image_name(index));
    send_response(req, ND_MSG_IMAGE, &w);
}

static void handle_upload(const nd_parser_t *req)
{
    nd_reader_t r;
    uint8_t kind;
    uint32_t offset;
    size_t n;
    nd_writer_t w;
    nd_reader_init(&r, req->payload, req->length);
    kind = nd_get_u8(&r);
    offset = nd_get_u32(&r);
    n = nd_reader_left(&r);
    if (r.error || n == 0u || (kind != ND_UPLOAD_RGB888 && kind != ND_UPLOAD_INT8)) {
        send_error(req, ND_ERR_MALFORMED, "UPLOAD wants kind 1|2, u32 offset, at least one byte");
        return;
    }
    if (app.engine_status < 0) {
        send_error(req, ND_ERR_ENGINE, "engine failed to initialise");
        return;
    }
    if (offset == 0u) {
        app.upload_kind = kind;
        app.upload_received = 0u;
    }
    if (kind != app.upload_kind || offset > app.upload_received || offset > INPUT_BYTES || n > INPUT_BYTES - offset) {
        send_error(req, ND_ERR_INDEX, "upload chunk out of order or past the input size");
        return;
    }
    /* The input may share the arena with the outputs, so an upload ends their validity. */
    app.outputs_valid = 0;
    nd_steps_invalidate();
    memcpy((uint8_t *)nd_engine_input() + offset, nd_get_bytes(&r, n), n);
    if (offset + n > app.upload_received) {
        app.upload_received = (uint32_t)(offset + n);
    }
    w = begin_response();
    nd_put_u8(&w, kind);
    nd_put_u32(&w, app.upload_received);
    send_response(req, ND_MSG_UPLOAD_ACK, &w);
}

/* RGB888 -> int8 BGR through the table generate rendered from preprocess.input_lut.  Safe in place
 * (src == dst): each pixel's three bytes are read before they are written. */
static void preprocess_rgb(const uint8_t *src, int8_t *dst)
{
    uint32_t i;
    for (i = 0u; i < INPUT_BYTES; i += 3u) {
        uint8_t r = src[i], g = src[i + 1u], b = src[i + 2u];
        dst[i] = nd_input_lut[0][b];
        dst[i + 1u] = nd_input_lut[1][g];
        dst[i + 2u] = nd_input_lut[2][r];
    }
}

static void handle_run(const nd_parser_t *req)
{
    nd_reader_t r;
    uint8_t source, step_flags = 0u;
    uint16_t index, stop_step = 0u;
    const uint8_t *image = NULL;
    int8_t *input;
    uint32_t t0, t1, t2, t3, t4, input_crc;
    int n = 0, i;
    nd_writer_t w;
    nd_reader_init(&r, req->payload, req->length);
    source = nd_get_u8(&r);
    index = nd_get_u16(&r);
    if (nd_reader_left(&r) == 3u) { /* the optional step instrumentation (nd_steps.h) */
        step_flags = nd_get_u8(&r);
        stop_step = nd_get_u16(&r);
    }
    if (r.error || nd_reader_left(&r) != 0u || source > ND_SOURCE_UPLOAD || (step_flags & ~ND_STEPS_ALL) != 0u) {
        send_error(req, ND_ERR_MALFORMED,
                   "RUN wants u8 source (0 embedded, 1 upload), u16 image index [, u8 step flags (1|2|4), u16 stop]");
        return;
    }
    if (app.engine_status < 0) {
        send_error(req, ND_ERR_ENGINE, "engine failed to initialise");
        return;
    }
    if (step_flags != 0u && nd_steps_count() == 0u) {
        send_error(req, ND_ERR_NO_STEPS, "firmware built without step instrumentation (generate --profile)");
        return;
    }
    if ((step_flags & ND_STEPS_STOP) != 0u && stop_step >= nd_steps_count()) {
        send_error(req, ND_ERR_INDEX, "stop step past the engine's last step");
        return;
    }
    if (source == ND_SOURCE_EMBEDDED) {
        image = embedded_image(index);
        if (image == NULL) {
            send_error(req, ND_ERR_INDEX, "no embedded image with that index");
            return;
        }
    } else if (app.upload_kind == 0u || app.upload_received != INPUT_BYTES) {
        send_error(req, ND_ERR_NO_INPUT, "no complete upload to run on");
        return;
    }
    {
        uint8_t busy[ND_PROTO_HEADER_BYTES + ND_PROTO_CRC_BYTES];
        size_t n_busy = nd_frame_encode(busy, sizeof(busy), ND_MSG_BUSY, req->seq, NULL, 0u);
        nd_board_uart_write(busy, n_busy);
    }
    input = nd_engine_input();
    app.outputs_valid = 0;
    t0 = nd_board_timer_now();
    if (image != NULL) {
        preprocess_rgb(image, input);
    } else if (app.upload_kind == ND_UPLOAD_RGB888) {
        preprocess_rgb((const uint8_t *)input, input);
    }
    t1 = nd_board_timer_now();
    input_crc = nd_crc32(0u, (const uint8_t *)input, INPUT_BYTES);
    /* Inference may reuse the input's memory: an upload is good for one RUN only. */
    app.upload_kind = 0u;
    app.upload_received = 0u;
    (void)nd_steps_arm(step_flags, stop_step); /* checked above; flags 0 leaves the hooks idle */
    t2 = nd_board_timer_now();                 /* the CRC is a check for the host, not part of any stage */
    if (nd_engine_invoke() != 0) {
        nd_steps_finish();
        send_error(req, ND_ERR_ENGINE, "engine invoke failed");
        return;
    }
    t3 = nd_board_timer_now();
    nd_steps_finish();
    if (nd_steps_stopped()) { /* the outputs were never computed: nothing to post-process */
        t4 = t3;
    } else {
        n = nd_postprocess(nd_engine_scores(), nd_engine_boxes(), &nd_post_params, app.detections, ND_MAX_DETECTIONS);
        t4 = nd_board_timer_now();
        if (n < 0) {
            send_error(req, ND_ERR_POSTPROCESS, "post-processing rejected its parameters");
            return;
        }
        app.outputs_valid = 1;
    }
    w = begin_response();
    nd_put_u8(&w, source);
    nd_put_u16(&w, index);
    nd_put_u32(&w, input_crc);
    nd_put_u32(&w, t1 - t0);
    nd_put_u32(&w, t3 - t2);
    nd_put_u32(&w, t4 - t3);
    nd_put_u16(&w, nd_post_params.coord_frac_bits);
    nd_put_u16(&w, (uint16_t)n);
    for (i = 0; i < n; ++i) {
        const nd_detection_t *d = &app.detections[i];
        nd_put_u32(&w, (uint32_t)d->x1);
        nd_put_u32(&w, (uint32_t)d->y1);
        nd_put_u32(&w, (uint32_t)d->x2);
        nd_put_u32(&w, (uint32_t)d->y2);
        nd_put_u16(&w, d->cell);
        nd_put_u8(&w, d->class_id);
        nd_put_u8(&w, (uint8_t)d->score);
    }
    send_response(req, ND_MSG_RESULT, &w);
}

static void handle_read(const nd_parser_t *req)
{
    nd_reader_t r;
    uint8_t region;
    uint16_t index, length;
    uint32_t offset, size;
    const uint8_t *base = NULL;
    nd_writer_t w;
    nd_reader_init(&r, req->payload, req->length);
    region = nd_get_u8(&r);
    index = nd_get_u16(&r);
    offset = nd_get_u32(&r);
    length = nd_get_u16(&r);
    if (r.error || nd_reader_left(&r) != 0u || length == 0u || length > ND_PROTO_MAX_PAYLOAD - DATA_HEADER_BYTES) {
        send_error(req, ND_ERR_MALFORMED, "READ wants u8 region, u16 index, u32 offset, u16 length (1..4091)");
        return;
    }
    if (region == ND_REGION_SCORES || region == ND_REGION_BOXES) {
        if (!app.outputs_valid) {
            send_error(req, ND_ERR_NO_OUTPUT, "no outputs: RUN first");
            return;
        }
        base = (const uint8_t *)(region == ND_REGION_SCORES ? nd_engine_scores() : nd_engine_boxes());
        size = region == ND_REGION_SCORES ? SCORES_BYTES : BOXES_BYTES;
    } else if (region == ND_REGION_IMAGE) {
        base = embedded_image(index);
        size = INPUT_BYTES;
    } else if (region == ND_REGION_STEP_OUTPUT) {
        const nd_step_output_t *out = nd_steps_stop_output(index);
        if (nd_steps_stop_outputs() == 0u) {
            send_error(req, ND_ERR_NO_OUTPUT, "no step output: RUN with the stop flag first");
            return;
        }
        base = out != NULL ? out->data : NULL;
        size = out != NULL ? out->bytes : 0u;
    } else {
        size = 0u;
    }
    if (base == NULL || offset > size || length > size - offset) {
        send_error(req, ND_ERR_INDEX, "READ region, index or range out of bounds");
        return;
    }
    w = begin_response();
    nd_put_u8(&w, region);
    nd_put_u32(&w, offset);
    nd_put_bytes(&w, base + offset, length);
    send_response(req, ND_MSG_DATA, &w);
}

static void handle_steps(const nd_parser_t *req)
{
    nd_reader_t r;
    uint16_t first, count;
    uint32_t total = nd_steps_count(), k;
    nd_writer_t w;
    nd_reader_init(&r, req->payload, req->length);
    first = nd_get_u16(&r);
    count = nd_get_u16(&r);
    if (r.error || nd_reader_left(&r) != 0u || count == 0u) {
        send_error(req, ND_ERR_MALFORMED, "STEPS wants u16 first step, u16 count (>= 1)");
        return;
    }
    if (total == 0u) {
        send_error(req, ND_ERR_NO_STEPS, "firmware built without step instrumentation (generate --profile)");
        return;
    }
    if (first >= total || total > 0xFFFFu) {
        send_error(req, ND_ERR_INDEX, "first step past the engine's last step");
        return;
    }
    if (count > total - first) {
        count = (uint16_t)(total - first);
    }
    if (count > (ND_PROTO_MAX_PAYLOAD - STEPS_HEADER_BYTES) / STEP_RECORD_BYTES) {
        count = (uint16_t)((ND_PROTO_MAX_PAYLOAD - STEPS_HEADER_BYTES) / STEP_RECORD_BYTES);
    }
    w = begin_response();
    nd_put_u16(&w, (uint16_t)total);
    nd_put_u16(&w, (uint16_t)nd_steps_completed());
    nd_put_u8(&w, nd_steps_flags());
    nd_put_u16(&w, first);
    nd_put_u16(&w, count);
    for (k = first; k < (uint32_t)first + count; ++k) {
        const nd_step_record_t *rec = nd_steps_record(k);
        nd_put_u32(&w, rec->ticks);
        nd_put_u32(&w, rec->crc);
        nd_put_u32(&w, rec->bytes);
    }
    send_response(req, ND_MSG_STEP_RECORDS, &w);
}

static void handle_shutdown(const nd_parser_t *req)
{
    nd_reader_t r;
    uint8_t code;
    nd_writer_t w = begin_response();
    nd_reader_init(&r, req->payload, req->length);
    code = nd_get_u8(&r);
    send_response(req, ND_MSG_BYE, &w);
    nd_board_exit(r.error ? 0 : code);
}

static void handle_frame(const nd_parser_t *req)
{
    if (req->version != ND_PROTO_VERSION) {
        send_error(req, ND_ERR_VERSION, "protocol version not supported (device speaks 1)");
        return;
    }
    /* The host repeats a request (same type and seq) only when it lost the reply: resend, do not redo. */
    if (req->type != ND_MSG_HELLO && app.tx_cached && req->type == app.tx_request_type &&
        req->seq == app.tx_request_seq) {
        nd_board_uart_write(app.tx_frame, app.tx_len);
        return;
    }
    switch (req->type) {
        case ND_MSG_HELLO:
            handle_hello(req);
            break;
        case ND_MSG_IMAGE_INFO:
            handle_image_info(req);
            break;
        case ND_MSG_UPLOAD:
            handle_upload(req);
            break;
        case ND_MSG_RUN:
            handle_run(req);
            break;
        case ND_MSG_READ:
            handle_read(req);
            break;
        case ND_MSG_SHUTDOWN:
            handle_shutdown(req);
            break;
        case ND_MSG_STEPS:
            handle_steps(req);
            break;
        default:
            send_error(req, ND_ERR_UNKNOWN_TYPE, "unknown request type");
            break;
    }
}

int main(void)
{
    nd_parser_t parser;
    uint32_t frame_start = 0u;
    nd_board_init();
    app.engine_status = nd_engine_init();
    nd_parser_init(&parser, app.rx_payload, sizeof(app.rx_payload));
    for (;;) {
        int c = nd_board_uart_read();
        if (nd_parser_busy(&parser) && nd_board_timer_now() - frame_start > ND_FRAME_DEADLINE_TICKS) {
            nd_parser_reset(&parser);
        }
        if (c < 0) {
            continue;
        }
        if (!nd_parser_busy(&parser)) {
            frame_start = nd_board_timer_now();
        }
        if (nd_parser_feed(&parser, (uint8_t)c) == ND_PARSE_FRAME) {
            handle_frame(&parser);
        }
    }
}
