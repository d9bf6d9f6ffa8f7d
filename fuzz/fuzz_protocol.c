/* libFuzzer target for the device's frame parser and payload reader (firmware/common/nd_protocol.c).
 * Properties beyond "no crash, no sanitizer report": a frame the parser accepts re-encodes to bytes that parse
 * back to the same frame, and nothing is ever written past the caller's buffer (ASan guards a tight buffer). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nd_protocol.h"

static void must(int cond)
{
    if (!cond) {
        abort();
    }
}

static void read_everything(const uint8_t *payload, size_t n)
{
    nd_reader_t r;
    nd_reader_init(&r, payload, n);
    while (!r.error) {
        switch (nd_get_u8(&r) % 4u) {
            case 0:
                (void)nd_get_u16(&r);
                break;
            case 1:
                (void)nd_get_u32(&r);
                break;
            case 2:
                (void)nd_get_bytes(&r, nd_get_u8(&r));
                break;
            default:
                (void)nd_get_bytes(&r, nd_reader_left(&r) + 1u);
                break;
        }
    }
    must(r.pos <= r.len);
}

static void check_roundtrip(const nd_parser_t *p)
{
    static uint8_t frame[ND_PROTO_MAX_FRAME], payload[ND_PROTO_MAX_PAYLOAD];
    nd_parser_t q;
    size_t n = nd_frame_encode(frame, sizeof(frame), p->type, p->seq, p->payload, p->length), i;
    int got = 0;
    must(n == ND_PROTO_HEADER_BYTES + p->length + ND_PROTO_CRC_BYTES);
    nd_parser_init(&q, payload, sizeof(payload));
    for (i = 0; i < n; ++i) {
        got += nd_parser_feed(&q, frame[i]) == ND_PARSE_FRAME;
    }
    must(got == 1 && q.type == p->type && q.seq == p->seq && q.length == p->length);
    must(memcmp(q.payload, p->payload, p->length) == 0);
}

/* Odd first byte: the rest is a frame's type, seq and payload, framed here with a good CRC and fed in, so the
 * fuzzer reaches accepted frames instead of stopping at the CRC. */
static void feed_framed(const uint8_t *data, size_t size)
{
    static uint8_t frame[ND_PROTO_MAX_FRAME], payload[ND_PROTO_MAX_PAYLOAD];
    nd_parser_t p;
    size_t len, n, i;
    int frames = 0;
    if (size < 3) {
        return;
    }
    len = size - 3 > ND_PROTO_MAX_PAYLOAD ? ND_PROTO_MAX_PAYLOAD : size - 3;
    n = nd_frame_encode(frame, sizeof(frame), data[0], (uint16_t)(data[1] | (data[2] << 8)), data + 3, len);
    must(n > 0);
    nd_parser_init(&p, payload, sizeof(payload));
    for (i = 0; i < n; ++i) {
        frames += nd_parser_feed(&p, frame[i]) == ND_PARSE_FRAME;
    }
    must(frames == 1);
    read_everything(p.payload, p.length);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 0 && (data[0] & 1u)) {
        feed_framed(data + 1, size - 1);
        return 0;
    }
    {
        /* The first byte picks the buffer size, so short buffers (length refusals) are explored too. */
        size_t capacity = size > 0 ? (size_t)data[0] * 17u : ND_PROTO_MAX_PAYLOAD;
        uint8_t *buf = malloc(capacity > 0 ? capacity : 1u);
        nd_parser_t p;
        size_t i;
        if (buf == NULL) {
            return 0;
        }
        nd_parser_init(&p, buf, capacity);
        for (i = 1; i < size; ++i) {
            int r = nd_parser_feed(&p, data[i]);
            must(r == ND_PARSE_MORE || r == ND_PARSE_FRAME || r == ND_PARSE_ERR_CRC || r == ND_PARSE_ERR_LENGTH);
            if (r == ND_PARSE_FRAME) {
                must(p.length <= capacity);
                read_everything(p.payload, p.length);
                check_roundtrip(&p);
            }
        }
        free(buf);
        return 0;
    }
}
