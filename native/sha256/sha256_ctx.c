/*
 * SHA-256 on the OpenSSL that Node itself is built with, over a context the caller owns as a
 * plain buffer. OpenSSL picks the CPU's SHA instructions where there are any; what makes this
 * worth a native module is that the context is an ordinary public struct, so its state can be
 * saved and continued (src/content/native-sha256.ts reads and writes its fields), which no
 * hash Node offers to JavaScript allows.
 *
 * The low-level SHA256_* functions are deprecated in OpenSSL 3 in favour of EVP, whose
 * contexts are opaque: these are the only ones whose state can be read back.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <node_api.h>
#include <openssl/sha.h>

static int context_arg(napi_env env, napi_value value, SHA256_CTX **ctx) {
  void *data;
  size_t length;
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, &buffer, &offset) != napi_ok ||
      type != napi_uint8_array || length != sizeof(SHA256_CTX) || ((size_t)data % sizeof(SHA_LONG)) != 0) {
    napi_throw_type_error(env, NULL, "expected an aligned Uint8Array the size of a SHA256_CTX");
    return 0;
  }
  *ctx = (SHA256_CTX *)data;
  return 1;
}

static napi_value init(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  SHA256_CTX *ctx;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !context_arg(env, argv[0], &ctx)) return NULL;
  SHA256_Init(ctx);
  return NULL;
}

static napi_value update(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  SHA256_CTX *ctx;
  void *data;
  size_t length;
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !context_arg(env, argv[0], &ctx)) return NULL;
  if (napi_get_typedarray_info(env, argv[1], &type, &length, &data, &buffer, &offset) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "expected a Uint8Array of data");
    return NULL;
  }
  SHA256_Update(ctx, data, length);
  return NULL;
}

/* The digest of a copy: the context itself can take more data afterwards. */
static napi_value digest(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  SHA256_CTX *ctx;
  SHA256_CTX copy;
  unsigned char md[SHA256_DIGEST_LENGTH];
  napi_value out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !context_arg(env, argv[0], &ctx)) return NULL;
  copy = *ctx;
  SHA256_Final(md, &copy);
  if (napi_create_buffer_copy(env, sizeof(md), md, NULL, &out) != napi_ok) return NULL;
  return out;
}

static napi_value module_init(napi_env env, napi_value exports) {
  napi_value size;
  napi_property_descriptor props[] = {
    {"init", NULL, init, NULL, NULL, NULL, napi_default, NULL},
    {"update", NULL, update, NULL, NULL, NULL, napi_default, NULL},
    {"digest", NULL, digest, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  napi_create_uint32(env, (uint32_t)sizeof(SHA256_CTX), &size);
  napi_set_named_property(env, exports, "contextSize", size);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, module_init)
