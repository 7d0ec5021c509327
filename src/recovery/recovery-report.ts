export interface RecoveryReport {
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  /** Jobs moved from processing back to pending. */
  resetToPending: number;
  /** Every pending job (ready or scheduled) after that reset. */
  pendingFound: number;
}
