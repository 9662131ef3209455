// Spread over seeds and the paired Student-t interval, against hand-computed values and published
// t quantiles (two-sided 95%: 12.7062 at 1 degree of freedom, 2.7764 at 4, 2.2622 at 9, 2.0423 at 30).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pairedTInterval, spread, studentTCdf, studentTQuantile } from '../../src/eval/stats.ts';

function close(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs ${expected}`);
}

test('spread: mean and sample standard deviation', () => {
  // Mean 5; squared deviations 9, 1, 1, 9 sum to 20; 20 / 3.
  const s = spread([2, 4, 6, 8]);
  close(s.mean, 5, 1e-15, 'mean');
  close(s.std, Math.sqrt(20 / 3), 1e-15, 'std');
  assert.deepEqual(spread([3]), { mean: 3, std: 0, values: [3] });
});

test('Student-t quantiles and CDF match published tables', () => {
  close(studentTQuantile(0.975, 1), 12.706204736, 1e-6, 'df 1');
  close(studentTQuantile(0.975, 4), 2.776445105, 1e-8, 'df 4');
  close(studentTQuantile(0.975, 9), 2.262157163, 1e-8, 'df 9');
  close(studentTQuantile(0.975, 30), 2.042272456, 1e-8, 'df 30');
  close(studentTQuantile(0.025, 4), -2.776445105, 1e-8, 'lower tail');
  // df 1 is the Cauchy distribution: P(T <= 1) = 1/2 + atan(1) / pi = 3/4.
  close(studentTCdf(1, 1), 0.75, 1e-12, 'Cauchy');
  close(studentTCdf(0, 7), 0.5, 1e-15, 'median');
});

test('paired t interval of a hand-computed case', () => {
  // Differences 0.05, 0.02, 0.01, 0.05, 0.03: mean 0.032, squared deviations sum 12.8e-4, variance 3.2e-4,
  // standard error sqrt(3.2e-4 / 5) = 0.008, half-width 2.776445 * 0.008 = 0.0222116.
  const i = pairedTInterval([0.6, 0.62, 0.58, 0.65, 0.61], [0.55, 0.6, 0.57, 0.6, 0.58]);
  close(i.mean, 0.032, 1e-12, 'mean');
  close(i.low, 0.032 - 0.0222116, 1e-7, 'low');
  close(i.high, 0.032 + 0.0222116, 1e-7, 'high');
  assert.equal(i.level, 0.95);
  assert.throws(() => pairedTInterval([1], [2]), /equal length >= 2, got 1 and 1/);
});
