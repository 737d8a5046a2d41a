/**
 * Federated averaging (McMahan et al. 2017, "FedAvg", one round): the requester combines the models
 * several owners trained on their own rows into one, weighting each by its row count — only the
 * parameters ever travel. For a linear model on owners whose rows come from one distribution it is
 * close to the fit on all rows together; it is not equal to it in general.
 *
 * The parts come from other organizations' connectors, so a part that does not fit the others
 * (another number of coefficients, a row count that is not a positive integer, a non-finite value)
 * is JOB_FAILED, not a bug here.
 */
import { ErrorCode, LedgerbusError } from '../../errors.js';

export interface ModelPart {
  readonly coefficients: readonly number[];
  readonly intercept: number;
  readonly n: number;
  readonly metrics: Readonly<Record<string, number>>;
}

export interface FederatedModel {
  readonly coefficients: number[];
  readonly intercept: number;
  /** Rows behind the model: the parts' rows together. */
  readonly n: number;
  /** The row-weighted mean of every metric that all parts report. */
  readonly metrics: Record<string, number>;
}

export function federatedAverage(parts: readonly ModelPart[]): FederatedModel {
  if (parts.length === 0) throw failed('no owner returned a model to average');
  const p = parts[0]!.coefficients.length;
  let total = 0;
  for (const [index, part] of parts.entries()) {
    if (part.coefficients.length !== p) {
      throw failed(`owner ${index + 1} returned ${part.coefficients.length} coefficients, the first ${p}`);
    }
    if (!Number.isSafeInteger(part.n) || part.n < 1) {
      throw failed(`owner ${index + 1} returned a row count of ${part.n}`);
    }
    if (![...part.coefficients, part.intercept].every(Number.isFinite)) {
      throw failed(`owner ${index + 1} returned a parameter that is not a finite number`);
    }
    total += part.n;
  }
  const weighted = (value: (part: ModelPart) => number): number => {
    let sum = 0;
    for (const part of parts) sum += (part.n / total) * value(part);
    return sum;
  };
  const coefficients = Array.from({ length: p }, (_, j) => weighted((part) => part.coefficients[j]!));
  // Only what every part reports, so no average silently stands for some owners alone.
  const names = Object.keys(parts[0]!.metrics)
    .filter((name) =>
      parts.every((part) => Object.hasOwn(part.metrics, name) && Number.isFinite(part.metrics[name])),
    )
    .sort();
  const metrics: Record<string, number> = {};
  for (const name of names) metrics[name] = weighted((part) => part.metrics[name]!);
  return { coefficients, intercept: weighted((part) => part.intercept), n: total, metrics };
}

function failed(message: string): LedgerbusError {
  return new LedgerbusError(ErrorCode.JobFailed, `federated average: ${message}`);
}
