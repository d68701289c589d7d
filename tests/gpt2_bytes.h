/* gpt2_bytes.h — the GPT-2 byte-level table for tests that build vocabularies: byte b as the
 * UTF-8 of its printable stand-in character. Written from the spec in reference-facts.md,
 * independently of runtime/tokenizer.c, so tests check the tokenizer against the spec. */
#pragma once

static inline void byte_char(int b, char out[3]) {
    int cp;
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) {
        cp = b;
    } else {
        int k = 0;
        for (int x = 0; x < b; x++) {
            if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) k++;
        }
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}
