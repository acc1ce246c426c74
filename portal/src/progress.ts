// Progress of a run of steps (the step engine's statuses: pending, waiting, running, done, skipped,
// failed): a skipped step is settled, as the Onboarding API counts it.
export const SETTLED = new Set(["done", "skipped"]);

export function settledSteps(items: { status: string }[]): number {
  return items.filter((item) => SETTLED.has(item.status)).length;
}
