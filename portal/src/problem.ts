// RFC 9457 problems from the APIs, shown as the API worded them.

export interface ProblemBody {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  reason?: string;
  [key: string]: unknown;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: ProblemBody,
  ) {
    super(problemText(problem, status));
  }

  /** The last part of the problem type: "forbidden", "invitation-expired", ... */
  get kind(): string {
    const type = this.problem.type ?? "";
    return type.split("/").pop() ?? "";
  }
}

export function problemText(problem: ProblemBody, status: number): string {
  const title = problem.title ?? `Request failed (${status})`;
  const detail = problem.detail ? `: ${problem.detail}` : "";
  // A validation problem names each refused field: say which, as the API worded it.
  const errors = Array.isArray(problem.errors)
    ? (problem.errors as { pointer?: string; detail?: string }[])
        .map((e) => [e.pointer?.replace(/^#\//, ""), e.detail].filter(Boolean).join(": "))
        .filter(Boolean)
    : [];
  return `${title}${detail}${errors.length ? ` (${errors.join("; ")})` : ""}`;
}

/** A tenant-level block (suspended, deactivated) refusing the call, from a 403's access reason. */
export function tenantBlock(error: unknown): string | null {
  if (!(error instanceof ApiError) || error.status !== 403) return null;
  const reason = typeof error.problem.reason === "string" ? error.problem.reason : "";
  return reason.startsWith("tenant ") ? reason.slice("tenant ".length) : null;
}
