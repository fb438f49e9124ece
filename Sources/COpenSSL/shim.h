// OpenSSL's libcrypto: AES-256-GCM for the sealed data plane (AES-NI/VAES: several GB/s a
// core, where CURVE's XSalsa20-Poly1305 does ~1.6) and HMAC-SHA256 to derive its key.
// Three one-call functions, so Swift never handles an EVP context.
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

/// Seals `length` bytes of `input` into `output` (same length; may be `input`) with AES-256-GCM
/// under `key` (32 bytes) and `nonce` (12 bytes), authenticating `ad` too; writes the 16-byte
/// tag. Returns 1, or 0 on failure.
static inline int redi_seal(const uint8_t *key, const uint8_t *nonce, const uint8_t *ad, size_t adLength,
                            const uint8_t *input, size_t length, uint8_t *output, uint8_t *tag) {
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c) return 0;
    int n = 0, ok = EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) == 1;
    if (ok && adLength > 0) ok = EVP_EncryptUpdate(c, NULL, &n, ad, (int)adLength) == 1;
    for (size_t done = 0; ok && done < length;) {  // EVP takes int lengths: 1 GiB at a time
        size_t piece = length - done > (1u << 30) ? (1u << 30) : length - done;
        ok = EVP_EncryptUpdate(c, output + done, &n, input + done, (int)piece) == 1;
        done += piece;
    }
    if (ok) ok = EVP_EncryptFinal_ex(c, output + length, &n) == 1;
    if (ok) ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok;
}

/// Opens what `redi_seal` sealed: decrypts into `output` (may be `input`) and returns 1 only
/// when the tag matches (key, nonce, `ad` and every byte as sealed); 0 otherwise, and then
/// `output` holds garbage the caller must not use.
static inline int redi_open(const uint8_t *key, const uint8_t *nonce, const uint8_t *ad, size_t adLength,
                            const uint8_t *input, size_t length, uint8_t *output, const uint8_t *tag) {
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c) return 0;
    int n = 0, ok = EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) == 1;
    if (ok && adLength > 0) ok = EVP_DecryptUpdate(c, NULL, &n, ad, (int)adLength) == 1;
    for (size_t done = 0; ok && done < length;) {
        size_t piece = length - done > (1u << 30) ? (1u << 30) : length - done;
        ok = EVP_DecryptUpdate(c, output + done, &n, input + done, (int)piece) == 1;
        done += piece;
    }
    if (ok) ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void *)tag) == 1;
    if (ok) ok = EVP_DecryptFinal_ex(c, output + length, &n) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok;
}

/// HMAC-SHA256 of `data` under `key` into `out` (32 bytes). Returns 1, or 0 on failure.
static inline int redi_hmac_sha256(const uint8_t *key, size_t keyLength, const uint8_t *data, size_t length, uint8_t *out) {
    unsigned int n = 0;
    return HMAC(EVP_sha256(), key, (int)keyLength, data, length, out, &n) != NULL && n == 32;
}
