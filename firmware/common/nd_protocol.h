/* Binary link protocol between the host (nanodet_mcu/link) and the device (nd_app.c); spec in docs/protocol.md.
 *
 * Frame: A5 5A | version | type | seq (u16) | length (u16) | payload[length] | CRC-32 (u32) ; little-endian.
 * The CRC (IEEE 802.3, the one zlib computes) covers version..payload, so a frame is accepted only whole.
 * Pure code: no I/O, no malloc, no static state, so the parser is fuzzed and tested on the host. */
#ifndef ND_PROTOCOL_H
#define ND_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ND_PROTO_SYNC0 0xA5u
#define ND_PROTO_SYNC1 0x5Au
#define ND_PROTO_VERSION 1u
#define ND_PROTO_HEADER_BYTES 8u
#define ND_PROTO_CRC_BYTES 4u
/* Largest payload either side sends; a frame announcing more is dropped at its header. */
#define ND_PROTO_MAX_PAYLOAD 4096u
#define ND_PROTO_MAX_FRAME (ND_PROTO_HEADER_BYTES + ND_PROTO_MAX_PAYLOAD + ND_PROTO_CRC_BYTES)

/* Requests (host -> device); a response carries the request's seq. */
#define ND_MSG_HELLO 0x01u      /* -> INFO */
#define ND_MSG_IMAGE_INFO 0x02u /* u16 index -> IMAGE */
#define ND_MSG_UPLOAD 0x03u     /* u8 kind, u32 offset, data -> UPLOAD_ACK */
#define ND_MSG_RUN 0x04u        /* u8 source, u16 image index [, u8 step flags, u16 stop step] -> RESULT */
#define ND_MSG_READ 0x05u       /* u8 region, u16 index, u32 offset, u16 length -> DATA */
#define ND_MSG_SHUTDOWN 0x06u   /* u8 exit code -> BYE, then the device stops */
/* 0x07 is not a request: its reply type would be BUSY's. */
#define ND_MSG_STEPS 0x08u /* u16 first step, u16 count -> STEP_RECORDS (per-step records of the last RUN) */
/* Responses (device -> host): request type | 0x80. */
#define ND_MSG_INFO 0x81u
#define ND_MSG_IMAGE 0x82u
#define ND_MSG_UPLOAD_ACK 0x83u
#define ND_MSG_RESULT 0x84u
#define ND_MSG_DATA 0x85u
#define ND_MSG_BYE 0x86u
#define ND_MSG_BUSY 0x87u /* empty: RUN accepted, result follows (lets the host tell slow from lost) */
#define ND_MSG_STEP_RECORDS 0x88u
#define ND_MSG_ERROR 0xFFu /* u16 code, u8 request type, u8 text length, text */

/* UPLOAD kinds */
#define ND_UPLOAD_RGB888 1u /* 320x320x3 RGB pixels, preprocessed on the device through nd_input_lut */
#define ND_UPLOAD_INT8 2u   /* the 1x320x320x3 int8 BGR input tensor itself */

/* RUN sources */
#define ND_SOURCE_EMBEDDED 0u
#define ND_SOURCE_UPLOAD 1u

/* RUN may add u8 step flags + u16 stop step: nd_steps.h's ND_STEPS_TIME | ND_STEPS_CRC | ND_STEPS_STOP. */

/* READ regions */
#define ND_REGION_SCORES 0u
#define ND_REGION_BOXES 1u
#define ND_REGION_IMAGE 2u       /* embedded image (RGB888) of the given index */
#define ND_REGION_STEP_OUTPUT 3u /* output <index> of the step a RUN stopped after */

/* ERROR codes */
#define ND_ERR_VERSION 1u      /* frame version not supported */
#define ND_ERR_UNKNOWN_TYPE 2u /* message type not a request */
#define ND_ERR_MALFORMED 3u    /* payload length or field out of range */
#define ND_ERR_INDEX 4u        /* image index / region / offset out of range */
#define ND_ERR_NO_INPUT 5u     /* RUN from an upload that is not complete */
#define ND_ERR_ENGINE 6u       /* engine init or invoke failed */
#define ND_ERR_POSTPROCESS 7u  /* nd_postprocess returned an error */
#define ND_ERR_NO_OUTPUT 8u    /* READ of an output before a successful RUN */
#define ND_ERR_NO_STEPS 9u     /* step instrumentation asked of a firmware built without ND_PROFILE */

/* Parser results */
#define ND_PARSE_MORE 0          /* byte consumed, no frame yet */
#define ND_PARSE_FRAME 1         /* a whole frame with a good CRC is in the parser */
#define ND_PARSE_ERR_LENGTH (-1) /* header announced more than the buffer holds; frame dropped */
#define ND_PARSE_ERR_CRC (-2)    /* CRC mismatch; frame dropped */

/* zlib-compatible CRC-32: start with crc = 0, feed chunks, the result is the CRC of their concatenation. */
uint32_t nd_crc32(uint32_t crc, const uint8_t *data, size_t n);

/* Whole frame into out; returns its size, or 0 if it does not fit cap or len > ND_PROTO_MAX_PAYLOAD. */
size_t nd_frame_encode(uint8_t *out, size_t cap, uint8_t type, uint16_t seq, const uint8_t *payload, size_t len);

/* Byte-at-a-time receiver.  It hunts for the sync bytes, so it recovers from garbage between frames. */
typedef struct {
    uint8_t *payload; /* caller's buffer */
    size_t capacity;  /* its size: longer frames are rejected at the header */
    uint8_t header[ND_PROTO_HEADER_BYTES];
    uint8_t crc_bytes[ND_PROTO_CRC_BYTES];
    size_t got; /* bytes of the current frame so far (header, payload, CRC) */
    /* valid after ND_PARSE_FRAME */
    uint8_t version;
    uint8_t type;
    uint16_t seq;
    uint16_t length;
} nd_parser_t;

void nd_parser_init(nd_parser_t *p, uint8_t *payload, size_t capacity);
void nd_parser_reset(nd_parser_t *p);             /* drop a partial frame, hunt for sync again */
int nd_parser_busy(const nd_parser_t *p);         /* 1 while inside a frame */
int nd_parser_feed(nd_parser_t *p, uint8_t byte); /* ND_PARSE_* */

/* Bounds-checked little-endian payload writer and reader: an overrun sets the sticky error flag instead of
 * touching memory, so message code checks once at the end. */
typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int error;
} nd_writer_t;

void nd_writer_init(nd_writer_t *w, uint8_t *buf, size_t cap);
void nd_put_u8(nd_writer_t *w, uint8_t v);
void nd_put_u16(nd_writer_t *w, uint16_t v);
void nd_put_u32(nd_writer_t *w, uint32_t v);
void nd_put_bytes(nd_writer_t *w, const void *data, size_t n);
void nd_put_str(nd_writer_t *w, const char *s); /* u8 length (truncated to 255) + bytes */

typedef struct {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    int error;
} nd_reader_t;

void nd_reader_init(nd_reader_t *r, const uint8_t *buf, size_t len);
uint8_t nd_get_u8(nd_reader_t *r);
uint16_t nd_get_u16(nd_reader_t *r);
uint32_t nd_get_u32(nd_reader_t *r);
const uint8_t *nd_get_bytes(nd_reader_t *r, size_t n); /* NULL (and error) if fewer than n remain */
size_t nd_reader_left(const nd_reader_t *r);

#ifdef __cplusplus
}
#endif

#endif /* ND_PROTOCOL_H */
