/** Limits on what one transaction may make a replica hold, shared by the SDT and escrow contracts. */
export const transactionLimits = {
  /** Same bound as a PBFT client request's operation. */
  transactionBytesMax: 1024 * 1024,
  messagesPerPublishMax: 1024,
  deliveriesPerConfirmMax: 1024,
  recipientsMax: 64,
  messageIdLengthMax: 128,
  organizationIdLengthMax: 256,
  /** Kafka's own limit on topic names. */
  topicLengthMax: 249,
  partitionMax: 1_000_000,
  keyBytesMax: 1024,
  contentTypeLengthMax: 128,
  headerEntriesMax: 32,
  headerNameLengthMax: 128,
  headerValueBytesMax: 1024,
  /**
   * A payload carried inside its publish: its ciphertext (a plaintext of at most 4 KiB in one chunk,
   * plus its 16-byte tag) and its envelope header (which grows with the recipients' wrapped keys).
   */
  inlineCiphertextBytesMax: 4 * 1024 + 16,
  inlineHeaderBytesMax: 16 * 1024,
} as const;

/** Length of a transaction nonce: 128 random bits, so honest connectors never collide. */
export const nonceBytes = 16;
