/**
 * Authenticates what other replicas send (Castro & Liskov §4.1: every message is signed, and a
 * replica discards what does not verify), and the evidence nested in view changes (§4.4: prepared
 * certificates and stable checkpoints). Retransmissions and view changes repeat the same envelopes
 * many times, so each is decoded and verified once and remembered, in bounded caches.
 */
import { ErrorCode } from '../../errors.js';
import { certificateValid, decodeBody, headerHash, proposalDigest, verifyEnvelope } from './messages.js';
import type {
  Envelope,
  NewView,
  PbftMessage,
  PreparedCertificate,
  PrePrepare,
  Prepare,
  ViewChange,
} from './messages.js';
import { primaryOf, hexKey, quorumSize, sameBytes } from './quorum.js';
import { rejectForGood } from './rejections.js';
import type { CertifiedHeader, PbftConfig, PbftCrypto } from './types.js';

/** Envelopes remembered as authentic, and view changes remembered as valid, each (oldest out first). */
const authenticatedEnvelopesMax = 8192;

export class Authenticator {
  /** At most `authenticatedEnvelopesMax`, oldest out first. */
  private readonly authenticated = new Map<string, PbftMessage>();
  /** At most `authenticatedEnvelopesMax`, oldest out first. */
  private readonly validViewChanges = new Set<string>();
  /** Each replica's public key by replica id: fixed for the epoch. */
  readonly keysById: ReadonlyMap<string, Uint8Array>;
  private readonly n: number;
  private readonly quorum: number;

  constructor(
    private readonly config: PbftConfig,
    private readonly crypto: PbftCrypto,
  ) {
    this.keysById = new Map(config.replicas.map((replica) => [replica.id, replica.publicKey]));
    this.n = config.replicas.length;
    this.quorum = quorumSize(this.n);
  }

  /** Decodes a body, checks its group, sender and signature. Throws a typed error otherwise. */
  authenticate(envelope: Envelope): PbftMessage {
    const cached = this.authenticated.get(this.envelopeKey(envelope));
    if (cached !== undefined) {
      if (cached.from === this.config.self) {
        throw rejectForGood(ErrorCode.Replay, 'message claims to come from this replica');
      }
      return cached;
    }
    const message = decodeBody(envelope.body);
    if (message.group !== this.config.groupId || message.epoch !== this.config.configEpoch) {
      throw rejectForGood(
        ErrorCode.WrongGroup,
        `message for ${message.group}@${message.epoch}, this replica is ${this.config.groupId}@${this.config.configEpoch}`,
      );
    }
    const sender = this.config.replicas[message.from];
    if (sender === undefined) {
      throw rejectForGood(ErrorCode.NonMember, `sender index ${message.from} is not a replica`);
    }
    if (message.from === this.config.self) {
      throw rejectForGood(ErrorCode.Replay, 'message claims to come from this replica');
    }
    if (!verifyEnvelope(this.crypto, envelope, message, sender.publicKey)) {
      throw rejectForGood(
        ErrorCode.BadSignature,
        `${message.type} signature from ${sender.id} does not verify`,
      );
    }
    this.rememberAuthenticated(envelope, message);
    return message;
  }

  /**
   * Identifies an envelope by its signature and body hash. Retransmissions and the evidence nested in
   * view changes repeat the same envelopes many times; decoding and verifying each once is enough.
   */
  private envelopeKey(envelope: Envelope): string {
    return hexKey(envelope.signature) + hexKey(this.crypto.hash('envelope', envelope.body));
  }

  private rememberAuthenticated(envelope: Envelope, message: PbftMessage): void {
    this.authenticated.set(this.envelopeKey(envelope), message);
    if (this.authenticated.size > authenticatedEnvelopesMax) {
      this.authenticated.delete(this.authenticated.keys().next().value as string);
    }
  }

  /**
   * §4.4: the view changes V a new-view message carries must be 2f+1 authentic, valid view changes
   * for its view from distinct replicas. Returns them decoded, or throws a BAD_VIEW_CHANGE rejection.
   */
  validateNewViewChanges(message: NewView): ViewChange[] {
    const changes: ViewChange[] = [];
    const senders = new Set<number>();
    for (const nested of message.viewChanges) {
      const change = this.authenticateNested(nested, 'view-change') as ViewChange;
      if (change.newView !== message.view || senders.has(change.from)) {
        throw rejectForGood(ErrorCode.BadViewChange, 'new view carries a mismatched or repeated view change');
      }
      this.validateViewChange(change, nested);
      senders.add(change.from);
      changes.push(change);
    }
    if (senders.size < this.quorum) {
      throw rejectForGood(ErrorCode.BadViewChange, 'new view carries fewer than 2f+1 view changes');
    }
    return changes;
  }

  /** Checks a view-change message's stable checkpoint and every prepared certificate in it. */
  validateViewChange(message: ViewChange, envelope: Envelope): void {
    const key = this.envelopeKey(envelope);
    if (this.validViewChanges.has(key)) return;
    this.checkViewChangeEvidence(message);
    this.validViewChanges.add(key);
    if (this.validViewChanges.size > authenticatedEnvelopesMax) {
      this.validViewChanges.delete(this.validViewChanges.values().next().value as string);
    }
  }

  private checkViewChangeEvidence(message: ViewChange): void {
    const stableSeq = message.stable === null ? 0 : message.stable.header.height;
    if (message.stable !== null && !this.isBase(message.stable)) {
      const header = message.stable.header;
      if (
        header.partitionId !== this.config.groupId ||
        header.configEpoch !== this.config.configEpoch ||
        header.height % this.config.checkpointInterval !== 0 ||
        !certificateValid(this.crypto, message.stable, this.keysById, this.quorum)
      ) {
        throw rejectForGood(ErrorCode.BadViewChange, 'view change carries an invalid stable checkpoint');
      }
    }
    const seen = new Set<number>();
    for (const certificate of message.prepared) {
      const prePrepare = this.checkPreparedCertificate(certificate, message.newView);
      if (prePrepare.seq <= stableSeq || prePrepare.seq > stableSeq + this.config.watermarkWindow) {
        throw rejectForGood(
          ErrorCode.BadViewChange,
          `prepared certificate for ${prePrepare.seq} outside the window`,
        );
      }
      if (seen.has(prePrepare.seq)) {
        throw rejectForGood(ErrorCode.BadViewChange, `two prepared certificates for ${prePrepare.seq}`);
      }
      seen.add(prePrepare.seq);
    }
  }

  /** A prepared certificate: a pre-prepare from its view's primary and 2f matching prepares from backups. */
  private checkPreparedCertificate(certificate: PreparedCertificate, beforeView: number): PrePrepare {
    const prePrepare = this.authenticateNested(certificate.prePrepare, 'pre-prepare') as PrePrepare;
    if (prePrepare.view >= beforeView || prePrepare.from !== primaryOf(prePrepare.view, this.n)) {
      throw rejectForGood(ErrorCode.BadViewChange, 'prepared certificate has a bad pre-prepare');
    }
    if (!sameBytes(proposalDigest(this.crypto, prePrepare.proposal), prePrepare.digest)) {
      throw rejectForGood(ErrorCode.BadViewChange, 'prepared certificate digest does not match');
    }
    const senders = new Set<number>();
    for (const envelope of certificate.prepares) {
      const prepare = this.authenticateNested(envelope, 'prepare') as Prepare;
      if (
        prepare.view !== prePrepare.view ||
        prepare.seq !== prePrepare.seq ||
        !sameBytes(prepare.digest, prePrepare.digest) ||
        prepare.from === prePrepare.from
      ) {
        throw rejectForGood(ErrorCode.BadViewChange, 'prepared certificate has a mismatched prepare');
      }
      senders.add(prepare.from);
    }
    if (senders.size < this.quorum - 1) {
      throw rejectForGood(ErrorCode.BadViewChange, 'prepared certificate has fewer than 2f prepares');
    }
    return prePrepare;
  }

  /** Authenticates evidence embedded in another message; our own messages count here too. */
  authenticateNested(envelope: Envelope, type: PbftMessage['type']): PbftMessage {
    const cached = this.authenticated.get(this.envelopeKey(envelope));
    if (cached !== undefined && cached.type === type) return cached;
    const message = decodeBody(envelope.body);
    const sender = this.config.replicas[message.from];
    if (
      message.type !== type ||
      sender === undefined ||
      message.group !== this.config.groupId ||
      message.epoch !== this.config.configEpoch ||
      !verifyEnvelope(this.crypto, envelope, message, sender.publicKey)
    ) {
      throw rejectForGood(ErrorCode.BadViewChange, `embedded ${type} is not authentic`);
    }
    this.rememberAuthenticated(envelope, message);
    return message;
  }

  /** True if `certified` is this epoch's base checkpoint (see PbftConfig.base). */
  private isBase(certified: CertifiedHeader): boolean {
    const base = this.config.base;
    return (
      base !== undefined &&
      certified.header.height === base.header.height &&
      sameBytes(headerHash(this.crypto, certified.header), headerHash(this.crypto, base.header))
    );
  }
}
