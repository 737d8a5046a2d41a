/**
 * How the replica refuses input. Every refusal says whether trying again can help (the `retriable`
 * flag of `Rejection`, as KafkaJS's `KafkaJSError`), so a driver never has to guess it from the code
 * or the message text. The replica throws one of these inside `step()`; `step()` turns it into a
 * `Rejection` and the input changes nothing.
 */
import { ErrorCode, LedgerbusError } from '../../errors.js';

/**
 * A refusal of input that is wrong in itself (malformed, badly signed, a replay, a protocol
 * violation): sending the same input again, here or elsewhere, is refused again.
 */
export function rejectForGood(code: ErrorCode, reason: string): LedgerbusError {
  return new LedgerbusError(code, reason, { retriable: false });
}

/**
 * A refusal of input that is fine in itself but cannot be taken now (a full queue, a view or a
 * window this replica has not reached yet): the same input may succeed later, after a view change,
 * or at another replica.
 */
export function rejectForNow(code: ErrorCode, reason: string): LedgerbusError {
  return new LedgerbusError(code, reason, { retriable: true });
}

/**
 * Refuses a normal-case message (§4.2) unless it is for the view this replica is in and it is not
 * changing views. A message for a view this replica may still enter (a later one, or the one it is
 * changing to) is refused retriably: it can be taken after the view change; one for an earlier view
 * never can.
 */
export function requireCurrentView(
  view: number,
  replica: { readonly view: number; readonly inViewChange: boolean },
): void {
  if (view === replica.view && !replica.inViewChange) return;
  const reachable = view > replica.view || (view === replica.view && replica.inViewChange);
  throw (reachable ? rejectForNow : rejectForGood)(
    ErrorCode.WrongView,
    `message for view ${view}; this replica is ${replica.inViewChange ? 'changing to' : 'in'} view ${replica.view}`,
  );
}

/**
 * Refuses a sequence number outside the watermarks (stableSeq, stableSeq + watermarkWindow] (§4.2).
 * Above the high watermark the message fits once the stable checkpoint advances (§4.3), so it is
 * refused retriably; at or below the stable checkpoint it is garbage-collected history.
 */
export function requireInWindow(seq: number, stableSeq: number, watermarkWindow: number): void {
  if (seq > stableSeq && seq <= stableSeq + watermarkWindow) return;
  throw (seq > stableSeq ? rejectForNow : rejectForGood)(
    ErrorCode.OutOfWindow,
    `sequence ${seq} outside (${stableSeq}, ${stableSeq + watermarkWindow}]`,
  );
}
