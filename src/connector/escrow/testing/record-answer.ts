/**
 * A node's `escrowRecord` answer built from a test partition's committed state and certified blocks
 * as the node's escrow service builds it (src/node/escrow-service.ts): the message's acceptance
 * proof, the view, and the block evidence of every position escrowRecordPositions lists. The test
 * chains answer with it; `hide` and `view` let a test play a node that withholds evidence or shows
 * a view its evidences do not back.
 */
import type { CborValue } from '../../../codec/index.js';
import { escrowRecordView } from '../../../contracts/escrow/queries.js';
import type { EscrowRecordView } from '../../../contracts/escrow/views.js';
import { messageById } from '../../../contracts/queries.js';
import type { ContractState } from '../../../contracts/state.js';
import { ErrorCode, LedgerbusError } from '../../../errors.js';
import type { Block } from '../../../ledger/block.js';
import {
  acceptanceProofToCbor,
  blockEvidence,
  blockEvidenceToCbor,
  escrowRecordPositions,
} from '../../../proofs/index.js';
import type { RecordPosition } from '../../../proofs/index.js';

export interface RecordAnswerOptions {
  /** Positions whose evidence the answer leaves out. */
  readonly hide?: (position: RecordPosition) => boolean;
  /** The view the answer shows instead of the committed one. */
  readonly view?: (record: EscrowRecordView) => EscrowRecordView;
}

/** The answer for message `id` of `group`; MESSAGE_NOT_FOUND when it is not an escrowed message there. */
export function escrowRecordAnswer(
  chain: { readonly state: ContractState; readonly blocks: readonly Block[] },
  group: string,
  id: string,
  options: RecordAnswerOptions = {},
): CborValue {
  const message = messageById(chain.state, group, id);
  const record = escrowRecordView(chain.state, group, id);
  if (message === undefined || record === undefined) {
    throw new LedgerbusError(ErrorCode.MessageNotFound, `no escrowed message ${id} in ${group}`);
  }
  const evidenceAt = ({ height, transactionIndex }: RecordPosition): CborValue =>
    blockEvidenceToCbor(blockEvidence(chain.blocks[height - 1] as Block, transactionIndex));
  const evidences = escrowRecordPositions(record)
    .filter((position) => options.hide?.(position) !== true)
    .map((position) => ({ ...position, evidence: evidenceAt(position) }));
  return {
    acceptance: acceptanceProofToCbor({
      block: blockEvidence(chain.blocks[message.height - 1] as Block, message.transactionIndex),
      messageIndex: message.messageIndex,
    }),
    record: (options.view?.(record) ?? record) as unknown as CborValue,
    evidences,
  };
}
