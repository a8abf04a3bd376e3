/*
 * cak_ec_point: the one elliptic-curve operation node:crypto does not offer, a constant-time scalar
 * multiplication that returns the whole point.
 *
 * ECIES needs the full shared point S = k·P (the KDF hashes both coordinates), but node's
 * ECDH.computeSecret returns only x(S). Without this addon src/crypto/ecies.ts recovers y with a
 * second ECDH call, which halves the rate of small encryptions. The arithmetic is OpenSSL's, the
 * library inside node: the same code computeSecret runs, without the key checks it repeats per call.
 *
 *   multiply(curve, scalar, point) -> Buffer (65 bytes, uncompressed SEC1)
 *     curve   0 = secp256r1 (P-256), 1 = secp256k1
 *     scalar  Buffer of 32 bytes, big-endian, 1 <= scalar < n
 *     point   Buffer of 65 bytes (0x04 || x || y) on the curve, or null for the generator
 *
 * Invalid arguments throw with a code (err.code): ERR_CAK_EC_ARGUMENT, ERR_CAK_EC_SCALAR,
 * ERR_CAK_EC_POINT; ERR_CAK_EC_INTERNAL when OpenSSL itself fails. Loading is optional: the
 * TypeScript side checks the addon against an independent implementation before using it.
 */
#include <node_api.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <stdint.h>
#include <stdlib.h>

#define SCALAR_BYTES 32
#define POINT_BYTES 65
#define CURVE_COUNT 2

static const int curve_nids[CURVE_COUNT] = {NID_X9_62_prime256v1, NID_secp256k1};

/* One set of curve groups per loaded instance (main thread or worker thread), freed with it. */
typedef struct {
  EC_GROUP *groups[CURVE_COUNT];
} Instance;

static void free_instance(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Instance *instance = data;
  for (int i = 0; i < CURVE_COUNT; i++) EC_GROUP_free(instance->groups[i]);
  free(instance);
}

static napi_value fail(napi_env env, const char *code, const char *message) {
  napi_throw_error(env, code, message);
  return NULL;
}

/* A Buffer's bytes, or NULL when the value is not a Buffer of exactly `length` bytes. */
static const uint8_t *buffer_of_length(napi_env env, napi_value value, size_t length) {
  bool is_buffer = false;
  void *data = NULL;
  size_t size = 0;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer) return NULL;
  if (napi_get_buffer_info(env, value, &data, &size) != napi_ok || size != length) return NULL;
  return data;
}

static napi_value multiply(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3) {
    return fail(env, "ERR_CAK_EC_ARGUMENT", "multiply(curve, scalar, point) takes three arguments");
  }
  int32_t curve = -1;
  if (napi_get_value_int32(env, argv[0], &curve) != napi_ok || curve < 0 || curve >= CURVE_COUNT) {
    return fail(env, "ERR_CAK_EC_ARGUMENT", "curve must be 0 (secp256r1) or 1 (secp256k1)");
  }
  Instance *instance = NULL;
  if (napi_get_instance_data(env, (void **)&instance) != napi_ok || instance == NULL) {
    return fail(env, "ERR_CAK_EC_INTERNAL", "addon not initialised");
  }
  const EC_GROUP *group = instance->groups[curve];
  if (group == NULL) return fail(env, "ERR_CAK_EC_INTERNAL", "OpenSSL does not provide this curve");

  const uint8_t *scalar_bytes = buffer_of_length(env, argv[1], SCALAR_BYTES);
  if (scalar_bytes == NULL) return fail(env, "ERR_CAK_EC_ARGUMENT", "scalar must be a Buffer of 32 bytes");

  napi_valuetype point_type;
  if (napi_typeof(env, argv[2], &point_type) != napi_ok) return fail(env, "ERR_CAK_EC_ARGUMENT", "bad point");
  const uint8_t *point_bytes = NULL;
  if (point_type != napi_null) {
    point_bytes = buffer_of_length(env, argv[2], POINT_BYTES);
    if (point_bytes == NULL) return fail(env, "ERR_CAK_EC_ARGUMENT", "point must be null or a Buffer of 65 bytes");
    /* Uncompressed only: OpenSSL would also take the hybrid 06/07 forms, which the profile refuses. */
    if (point_bytes[0] != 0x04) return fail(env, "ERR_CAK_EC_POINT", "point must be uncompressed (0x04 prefix)");
  }

  const char *error_code = "ERR_CAK_EC_INTERNAL";
  const char *error_message = "OpenSSL failed";
  uint8_t out[POINT_BYTES];
  BN_CTX *ctx = BN_CTX_secure_new();
  BIGNUM *k = BN_secure_new();
  EC_POINT *base = NULL;
  EC_POINT *result = EC_POINT_new(group);
  if (ctx == NULL || k == NULL || result == NULL) goto done;
  /* Constant-time paths for a secret scalar: OpenSSL's Montgomery ladder or its nistz256 code. */
  BN_set_flags(k, BN_FLG_CONSTTIME);
  if (BN_bin2bn(scalar_bytes, SCALAR_BYTES, k) == NULL) goto done;
  if (BN_is_zero(k) || BN_cmp(k, EC_GROUP_get0_order(group)) >= 0) {
    error_code = "ERR_CAK_EC_SCALAR";
    error_message = "scalar must be in [1, n - 1]";
    goto done;
  }
  int multiplied;
  if (point_bytes == NULL) {
    multiplied = EC_POINT_mul(group, result, k, NULL, NULL, ctx);
  } else {
    base = EC_POINT_new(group);
    if (base == NULL) goto done;
    /* oct2point refuses coordinates >= p and points off the curve. */
    if (!EC_POINT_oct2point(group, base, point_bytes, POINT_BYTES, ctx)) {
      error_code = "ERR_CAK_EC_POINT";
      error_message = "point is not on the curve";
      goto done;
    }
    multiplied = EC_POINT_mul(group, result, NULL, base, k, ctx);
  }
  /* Both curves have prime order and cofactor 1, so infinity means a broken library, not bad input. */
  if (!multiplied || EC_POINT_is_at_infinity(group, result)) goto done;
  if (EC_POINT_point2oct(group, result, POINT_CONVERSION_UNCOMPRESSED, out, POINT_BYTES, ctx) != POINT_BYTES) {
    goto done;
  }
  error_code = NULL;

done:
  EC_POINT_clear_free(result);
  EC_POINT_free(base);
  BN_clear_free(k);
  BN_CTX_free(ctx);
  /* A refused point leaves OpenSSL errors queued on this thread; node's own crypto must not see them. */
  ERR_clear_error();
  napi_value buffer = NULL;
  if (error_code == NULL && napi_create_buffer_copy(env, POINT_BYTES, out, NULL, &buffer) != napi_ok) {
    error_code = "ERR_CAK_EC_INTERNAL";
    error_message = "could not allocate the result";
  }
  OPENSSL_cleanse(out, sizeof out);
  return error_code == NULL ? buffer : fail(env, error_code, error_message);
}

NAPI_MODULE_INIT() {
  Instance *instance = calloc(1, sizeof *instance);
  if (instance == NULL) return NULL;
  for (int i = 0; i < CURVE_COUNT; i++) instance->groups[i] = EC_GROUP_new_by_curve_name(curve_nids[i]);
  if (napi_set_instance_data(env, instance, free_instance, NULL) != napi_ok) {
    free_instance(env, instance, NULL);
    return NULL;
  }
  napi_value fn;
  if (napi_create_function(env, "multiply", NAPI_AUTO_LENGTH, multiply, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "multiply", fn) != napi_ok) return NULL;
  return exports;
}
