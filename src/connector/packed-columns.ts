/**
 * A connector's envelope headers and proofs at rest (issue 18): each is a canonical CBOR map of
 * about 480 and 770 bytes whose keys and strings repeat from one message to the next, so each is
 * deflated against a frozen dictionary made of one such record (about 280 and 510 bytes). The row
 * says how its column is kept (`header_packed`, `proof_packed`: a `ColumnPacking`), so rows written
 * before read unchanged. The dictionaries are part of the stored format (their hashes are frozen in
 * packed-columns.test.ts); a new one needs a new `ColumnPacking` value, the old one staying readable.
 */
import { DictionaryDeflate } from '../codec/dictionary-deflate.js';

/** An envelope header (format 1) of a 200-byte message from org1 to org2. */
export const headerDictionaryV1 = Buffer.from(
  'rGd2ZXJzaW9uAWlwYXlsb2FkSWRmc29hay03aXNpZ25hdHVyZVhAVJDn0CJ+nHe/kvMTERcsXPTZohWaK2lb3znZEOcdGtaALBIFpugoRYsskTDX4YztuLP4LBkBPEgPmB68mFFVCWpjaHVua0J5dGVzGgAQAABqY2h1bmtDb3VudAFqbWVya2xlUm9vdFggaiDaBNV6E4xXm7NrO0AbcLtjL+gFSiQh90GVfss5jqlqcmVjaXBpZW50c4GjZW9yZ0lkZG9yZzJqd3JhcHBlZEtleVgwmkuN+Zd3evIy9pkXVmes9HquJX6slZ1Z5a1kcsCCcBglpZWIc2K4BpzoyeEuj9lgb2VuY2Fwc3VsYXRlZEtleVggrhy9oRv/oy2ckARGi30d6FlQvCyMghJKYU1tjeyb4zJrY2h1bmtIYXNoZXNYICTSTf67r44etyrclCNod4PfINsKOGsKm5TZ7DY5YRf0a2NvbnRlbnRUeXBleBhhcHBsaWNhdGlvbi9vY3RldC1zdHJlYW1rc2VuZGVyT3JnSWRkb3JnMW1rZXlDb21taXRtZW50WCDmKWWZjR9if4DqZ1Iyu+5fqSder0aKYVRo4YFhmYeojW5wbGFpbnRleHRCeXRlcxjI',
  'base64',
);

/** The message's own part of a compact (version 2) acceptance proof (see proof-parts.ts). */
export const proofDictionaryV1 = Buffer.from(
  'pWdtZXNzYWdlWKeqYmlkZnNvYWstN2NrZXn2ZHNpemUY2GV0b3BpY2RkZW1vZnNlbmRlcmRvcmcxZ2hlYWRlcnOgaXBhcnRpdGlvbgBqcmVjaXBpZW50c4Fkb3JnMmtjb250ZW50Um9vdFggaiDaBNV6E4xXm7NrO0AbcLtjL+gFSiQh90GVfss5jqlrY29udGVudFR5cGV4GGFwcGxpY2F0aW9uL29jdGV0LXN0cmVhbWdvdXRjb21lWEymYmlkZnNvYWstN2ZoZWlnaHQDZm9mZnNldBgzZnN0YXR1c2hBQ0NFUFRFRGxtZXNzYWdlSW5kZXgHcHRyYW5zYWN0aW9uSW5kZXgAZ3ZlcnNpb24CbG1lc3NhZ2VQcm9vZqNkcGF0aIZYINzgU/ubw5cnDhmdSxQZLXVq1jX9eeZv95x6VGfhoflyWCDit7m8BCS1D4SP3uZTimK4QVMmH426c6clLb8uS9zLdFggDMeEBkA78AG5Nhodok52x//iqgrwcUdawMUyswkWgF5YIJ/cNWUC/Z2wEoOOqXCnXBO1bg0oisFYk9sX6dQBHxj6WCByu1m/i+WtoSIkSq7wXWUq0q1dX4WVesLFrXEc3sU+TFggeSyNdnragud9vGHFiJhLpby25jMz0gBlx3LiT1qXoe5odHJlZVNpemUYQGlsZWFmSW5kZXgHbG91dGNvbWVQcm9vZqNkcGF0aIZYIJNDc11FjxcjSImlACacVn6UtPhQhff+6jzIlTo/BRBdWCALjKd1JGRRKSlGa/W0LOo52PUdKocKpt2Kym96qfY+alggnPx9JMp0mdJcA8VzGjbEy/lNAO18qAiyg9JkfLnyDIFYIJOgbaN0Qd0VnbGLYjxwsID+vsp/wvk8f+QgBUdFZnTUWCDl5QXsKDmxwu7gbwRb8myz/wriVkP4Mu4isow22h58mlggvOjKQ0RjAR6ThcSM3RaPbx1LfpeQgFgl4PgtrjSUx/todHJlZVNpemUYQGlsZWFmSW5kZXgH',
  'base64',
);

/** Packs and unpacks envelope headers (the row's `header_packed` is the packing). */
export const headerColumns = new DictionaryDeflate([headerDictionaryV1], 128);

/** Packs and unpacks proofs, or a proof's own part (proof-parts.ts); `proof_packed` is the packing. */
export const proofColumns = new DictionaryDeflate([proofDictionaryV1], 128);
