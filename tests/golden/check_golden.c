/* Host test of firmware/common/nd_protocol.c against the golden frames the Python codec is also tested with.
 * Usage: check_golden <dir with index.txt>.  Prints one line per failure; exit status = number of failures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd_protocol.h"

static int failures;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            printf("FAIL %s: ", name);                                                                                 \
            printf(__VA_ARGS__);                                                                                       \
            printf("\n");                                                                                              \
            ++failures;                                                                                                \
        }                                                                                                              \
    } while (0)

static size_t read_file(const char *path, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n;
    if (f == NULL) {
        return (size_t)-1;
    }
    n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void check_entry(const char *dir, const char *name, const char *expect, unsigned type, unsigned seq,
                        unsigned payload_len)
{
    static uint8_t data[2 * ND_PROTO_MAX_FRAME], payload[ND_PROTO_MAX_PAYLOAD], again[ND_PROTO_MAX_FRAME];
    char path[1024];
    size_t n, i;
    nd_parser_t p;
    int frames = 0, crc_errors = 0, length_errors = 0;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    n = read_file(path, data, sizeof(data));
    CHECK(n != (size_t)-1, "cannot read %s", path);
    if (n == (size_t)-1) {
        return;
    }
    nd_parser_init(&p, payload, sizeof(payload));
    for (i = 0; i < n; ++i) {
        int r = nd_parser_feed(&p, data[i]);
        if (r == ND_PARSE_FRAME) {
            ++frames;
        }
        if (r == ND_PARSE_ERR_CRC) {
            ++crc_errors;
        }
        if (r == ND_PARSE_ERR_LENGTH) {
            ++length_errors;
        }
    }
    if (strcmp(expect, "ok") == 0) {
        CHECK(frames == 1 && crc_errors == 0 && length_errors == 0, "want one frame, got %d (crc %d, length %d)",
              frames, crc_errors, length_errors);
        CHECK(p.type == type && p.seq == seq && p.length == payload_len && p.version == ND_PROTO_VERSION,
              "fields type %u seq %u len %u", p.type, p.seq, p.length);
        /* the encoder must reproduce the golden bytes exactly */
        CHECK(nd_frame_encode(again, sizeof(again), p.type, p.seq, p.payload, p.length) == n &&
                  memcmp(again, data, n) == 0,
              "re-encoding differs");
    } else if (strcmp(expect, "crc") == 0) {
        CHECK(frames == 0 && crc_errors == 1, "want a CRC error, got %d frames %d crc errors", frames, crc_errors);
    } else if (strcmp(expect, "length") == 0) {
        CHECK(frames == 0 && length_errors == 1, "want a length error, got %d frames %d length errors", frames,
              length_errors);
    } else if (strcmp(expect, "stream2") == 0) {
        CHECK(frames == 2 && p.type == type && p.seq == seq && p.length == payload_len,
              "want 2 frames ending with type %u seq %u, got %d frames", type, seq, frames);
    } else {
        CHECK(0, "unknown expectation %s", expect);
    }
}

static void check_payload_codec(void)
{
    const char *name = "payload codec";
    uint8_t buf[8];
    nd_writer_t w;
    nd_reader_t r;
    nd_writer_init(&w, buf, sizeof(buf));
    nd_put_u32(&w, 0x11223344u);
    nd_put_u16(&w, 0xA55Au);
    nd_put_u16(&w, 7u);
    CHECK(!w.error && w.len == 8u && buf[0] == 0x44u && buf[4] == 0x5Au, "little-endian writes");
    nd_put_u8(&w, 1u);
    CHECK(w.error && w.len == 8u, "overflow must set the error and write nothing");
    nd_reader_init(&r, buf, 7u);
    CHECK(nd_get_u32(&r) == 0x11223344u && nd_get_u16(&r) == 0xA55Au, "reads");
    CHECK(nd_get_u16(&r) == 0u && r.error, "reading past the end must fail");
    CHECK(nd_crc32(0u, (const uint8_t *)"123456789", 9u) == 0xCBF43926u, "CRC-32 check value");
    CHECK(nd_crc32(nd_crc32(0u, (const uint8_t *)"1234", 4u), (const uint8_t *)"56789", 5u) == 0xCBF43926u,
          "CRC-32 in two parts");
}

int main(int argc, char **argv)
{
    char path[1024], name[256], expect[32];
    unsigned type, seq, len;
    FILE *index;
    int entries = 0;
    if (argc != 2) {
        fprintf(stderr, "usage: %s GOLDEN_DIR\n", argv[0]);
        return 2;
    }
    snprintf(path, sizeof(path), "%s/index.txt", argv[1]);
    index = fopen(path, "r");
    if (index == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return 2;
    }
    while (fscanf(index, "%255s %31s %u %u %u", name, expect, &type, &seq, &len) == 5) {
        check_entry(argv[1], name, expect, type, seq, len);
        ++entries;
    }
    fclose(index);
    check_payload_codec();
    printf("%d golden frames, %d failures\n", entries, failures);
    return failures > 0 ? 1 : (entries > 0 ? 0 : 2);
}
