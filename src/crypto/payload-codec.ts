import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import { METADATA_ENCODING_KEY } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { gcmOpen, gcmSeal, GCM_NONCE_LENGTH, GCM_TAG_LENGTH, randomNonce } from './aead';
import { activeKey, type Keyring } from './keyring';
import { CryptoError } from './keys';

/**
 * Encrypts every Temporal payload the client and worker send, so workflow history on the server
 * holds no plaintext. Each payload becomes one AES-256-GCM ciphertext of the whole serialized
 * payload (its metadata included): data = nonce (12 B) || ciphertext || tag (16 B), with the key id
 * in the metadata so keys can rotate; the key id is authenticated as associated data.
 *
 * Decoding refuses an unencrypted payload: anyone who can reach Temporal could start a workflow or
 * send a signal with plain JSON, and only what went through this codec (so: through a holder of the
 * codec key) may reach workflows and activities.
 */

const ENCRYPTED_ENCODING = 'binary/encrypted';
const KEY_ID_METADATA = 'encryption-key-id';
const AAD_LABEL = 'cak-codec-v1:';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface PayloadCodecOptions {
  /** Decode unencrypted payloads as they are instead of refusing them: for display only (the codec endpoint). */
  acceptUnencrypted?: boolean;
}

export class AesGcmPayloadCodec implements PayloadCodec {
  private constructor(
    private readonly keyring: Keyring,
    private readonly acceptUnencrypted: boolean,
  ) {}

  static create(keyring: Keyring, options: PayloadCodecOptions = {}): AesGcmPayloadCodec {
    activeKey(keyring); // fail at construction, not on the first payload
    return new AesGcmPayloadCodec(keyring, options.acceptUnencrypted ?? false);
  }

  encode(payloads: Payload[]): Promise<Payload[]> {
    const { kid, key } = activeKey(this.keyring);
    // A promise executor turns a throw into a rejection, as callers of a PayloadCodec expect.
    return new Promise((resolve) =>
      resolve(
        payloads.map((payload) => {
          const nonce = randomNonce();
          const plain = temporal.api.common.v1.Payload.encode(payload).finish();
          const { ciphertext, tag } = gcmSeal(key, nonce, plain, aadFor(kid));
          return {
            metadata: {
              [METADATA_ENCODING_KEY]: encoder.encode(ENCRYPTED_ENCODING),
              [KEY_ID_METADATA]: encoder.encode(kid),
            },
            data: Buffer.concat([nonce, ciphertext, tag]),
          };
        }),
      ),
    );
  }

  decode(payloads: Payload[]): Promise<Payload[]> {
    return new Promise((resolve) => resolve(payloads.map((payload) => this.decodeOne(payload))));
  }

  private decodeOne(payload: Payload): Payload {
    const encoding = payload.metadata?.[METADATA_ENCODING_KEY];
    if (!encoding || decoder.decode(encoding) !== ENCRYPTED_ENCODING) {
      if (this.acceptUnencrypted) return payload;
      throw new CryptoError('CODEC_PAYLOAD_UNENCRYPTED', 'payload is not encrypted by the codec');
    }
    const kidBytes = payload.metadata?.[KEY_ID_METADATA];
    const kid = kidBytes ? decoder.decode(kidBytes) : '';
    const key = this.keyring.keys.get(kid);
    if (!key) throw new CryptoError('CODEC_KEY_UNKNOWN', `payload key "${kid}" is not in the codec keyring`);
    const data = payload.data ?? new Uint8Array();
    if (data.length < GCM_NONCE_LENGTH + GCM_TAG_LENGTH)
      throw new CryptoError('CODEC_PAYLOAD_INVALID', 'payload is truncated');
    const plain = gcmOpen(
      key,
      data.subarray(0, GCM_NONCE_LENGTH),
      data.subarray(GCM_NONCE_LENGTH, data.length - GCM_TAG_LENGTH),
      data.subarray(data.length - GCM_TAG_LENGTH),
      aadFor(kid),
    );
    if (!plain) throw new CryptoError('CODEC_PAYLOAD_INVALID', 'payload failed authentication');
    return temporal.api.common.v1.Payload.decode(plain);
  }
}

function aadFor(kid: string): Buffer {
  return Buffer.from(AAD_LABEL + kid, 'utf8');
}

const converters = new WeakMap<Keyring, DataConverter>();

/**
 * The one data converter for a keyring, shared by client and worker. Its failure converter moves
 * failure messages and stack traces into a payload, so the codec encrypts those too.
 */
export function dataConverterFor(keyring: Keyring): DataConverter {
  let converter = converters.get(keyring);
  if (!converter) {
    converter = {
      payloadCodecs: [AesGcmPayloadCodec.create(keyring)],
      failureConverterPath: require.resolve('./failure-converter'),
    };
    converters.set(keyring, converter);
  }
  return converter;
}

/** The codec of a keyring's memoized data converter. */
export function payloadCodecFor(keyring: Keyring): AesGcmPayloadCodec {
  const codec = dataConverterFor(keyring).payloadCodecs?.[0];
  if (!(codec instanceof AesGcmPayloadCodec)) throw new Error('unexpected data converter');
  return codec;
}
