/* Frame codec of the link protocol (docs/protocol.md).  Every length that arrives from the wire is checked
 * against the caller's buffer before a byte is stored, so no input can write out of bounds. */
#include "nd_protocol.h"

#include <string.h>

/* Half-byte table of the reflected polynomial 0xEDB88320: 64 bytes of flash instead of 1 KB, and still a
 * few instructions per byte, which is plenty for a 115200-baud link. */
static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

uint32_t nd_crc32(uint32_t crc, const uint8_t *data, size_t n)
{
    size_t i;
    crc = ~crc;
    for (i = 0; i < n; ++i) {
        crc ^= data[i];
        crc = (crc >> 4) ^ crc_nibble[crc & 0xFu];
        crc = (crc >> 4) ^ crc_nibble[crc & 0xFu];
    }
    return ~crc;
}

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

size_t nd_frame_encode(uint8_t *out, size_t cap, uint8_t type, uint16_t seq, const uint8_t *payload, size_t len)
{
    size_t total = ND_PROTO_HEADER_BYTES + len + ND_PROTO_CRC_BYTES;
    uint32_t crc;
    if (out == NULL || len > ND_PROTO_MAX_PAYLOAD || total > cap || (len > 0u && payload == NULL)) {
        return 0;
    }
    out[0] = ND_PROTO_SYNC0;
    out[1] = ND_PROTO_SYNC1;
    out[2] = ND_PROTO_VERSION;
    out[3] = type;
    put_le16(out + 4, seq);
    put_le16(out + 6, (uint16_t)len);
    if (len > 0u) {
        memmove(out + ND_PROTO_HEADER_BYTES, payload, len); /* payload may already sit in out */
    }
    crc = nd_crc32(0u, out + 2, ND_PROTO_HEADER_BYTES - 2u + len);
    put_le32(out + ND_PROTO_HEADER_BYTES + len, crc);
    return total;
}

void nd_parser_init(nd_parser_t *p, uint8_t *payload, size_t capacity)
{
    memset(p, 0, sizeof(*p));
    p->payload = payload;
    p->capacity = payload != NULL ? capacity : 0u;
}

void nd_parser_reset(nd_parser_t *p)
{
    p->got = 0u;
}

int nd_parser_busy(const nd_parser_t *p)
{
    return p->got > 0u;
}

int nd_parser_feed(nd_parser_t *p, uint8_t byte)
{
    size_t got = p->got;
    if (got == 0u) {
        if (byte == ND_PROTO_SYNC0) {
            p->header[p->got++] = byte;
        }
        return ND_PARSE_MORE;
    }
    if (got == 1u) {
        if (byte == ND_PROTO_SYNC1) {
            p->header[p->got++] = byte;
        } else {
            /* A5 A5 5A must still sync on the second A5. */
            p->got = (byte == ND_PROTO_SYNC0) ? 1u : 0u;
        }
        return ND_PARSE_MORE;
    }
    if (got < ND_PROTO_HEADER_BYTES) {
        p->header[p->got++] = byte;
        if (p->got == ND_PROTO_HEADER_BYTES) {
            p->length = get_le16(p->header + 6);
            if (p->length > p->capacity || p->length > ND_PROTO_MAX_PAYLOAD) {
                p->got = 0u;
                return ND_PARSE_ERR_LENGTH;
            }
        }
        return ND_PARSE_MORE;
    }
    if (got < ND_PROTO_HEADER_BYTES + (size_t)p->length) {
        p->payload[got - ND_PROTO_HEADER_BYTES] = byte;
        p->got++;
        return ND_PARSE_MORE;
    }
    p->crc_bytes[got - ND_PROTO_HEADER_BYTES - p->length] = byte;
    p->got++;
    if (p->got < ND_PROTO_HEADER_BYTES + (size_t)p->length + ND_PROTO_CRC_BYTES) {
        return ND_PARSE_MORE;
    }
    p->got = 0u;
    {
        uint32_t crc = nd_crc32(0u, p->header + 2, ND_PROTO_HEADER_BYTES - 2u);
        crc = nd_crc32(crc, p->payload, p->length);
        if (crc != get_le32(p->crc_bytes)) {
            return ND_PARSE_ERR_CRC;
        }
    }
    p->version = p->header[2];
    p->type = p->header[3];
    p->seq = get_le16(p->header + 4);
    return ND_PARSE_FRAME;
}

void nd_writer_init(nd_writer_t *w, uint8_t *buf, size_t cap)
{
    w->buf = buf;
    w->cap = buf != NULL ? cap : 0u;
    w->len = 0u;
    w->error = 0;
}

static uint8_t *writer_room(nd_writer_t *w, size_t n)
{
    uint8_t *at;
    if (w->error || n > w->cap - w->len) {
        w->error = 1;
        return NULL;
    }
    at = w->buf + w->len;
    w->len += n;
    return at;
}

void nd_put_u8(nd_writer_t *w, uint8_t v)
{
    uint8_t *at = writer_room(w, 1u);
    if (at != NULL) {
        at[0] = v;
    }
}

void nd_put_u16(nd_writer_t *w, uint16_t v)
{
    uint8_t *at = writer_room(w, 2u);
    if (at != NULL) {
        put_le16(at, v);
    }
}

void nd_put_u32(nd_writer_t *w, uint32_t v)
{
    uint8_t *at = writer_room(w, 4u);
    if (at != NULL) {
        put_le32(at, v);
    }
}

void nd_put_bytes(nd_writer_t *w, const void *data, size_t n)
{
    uint8_t *at = writer_room(w, n);
    if (at != NULL && n > 0u) {
        memcpy(at, data, n);
    }
}

void nd_put_str(nd_writer_t *w, const char *s)
{
    size_t n = 0u;
    if (s != NULL) {
        while (n < 255u && s[n] != '\0') {
            ++n;
        }
    }
    nd_put_u8(w, (uint8_t)n);
    nd_put_bytes(w, s, n);
}

void nd_reader_init(nd_reader_t *r, const uint8_t *buf, size_t len)
{
    r->buf = buf;
    r->len = buf != NULL ? len : 0u;
    r->pos = 0u;
    r->error = 0;
}

const uint8_t *nd_get_bytes(nd_reader_t *r, size_t n)
{
    const uint8_t *at;
    if (r->error || n > r->len - r->pos) {
        r->error = 1;
        return NULL;
    }
    at = r->buf + r->pos;
    r->pos += n;
    return at;
}

uint8_t nd_get_u8(nd_reader_t *r)
{
    const uint8_t *at = nd_get_bytes(r, 1u);
    return at != NULL ? at[0] : 0u;
}

uint16_t nd_get_u16(nd_reader_t *r)
{
    const uint8_t *at = nd_get_bytes(r, 2u);
    return at != NULL ? get_le16(at) : 0u;
}

uint32_t nd_get_u32(nd_reader_t *r)
{
    const uint8_t *at = nd_get_bytes(r, 4u);
    return at != NULL ? get_le32(at) : 0u;
}

size_t nd_reader_left(const nd_reader_t *r)
{
    return r->len - r->pos;
}
