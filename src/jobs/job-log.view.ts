import type { JobLogLine } from '../core/job-log';
import type { JobLogLineView } from './dto/job-log.dto';

/** A stored line as the API shows it: its time as ISO 8601. */
export function toLogLineView(line: JobLogLine): JobLogLineView {
  return { attempt: line.attempt, seq: line.seq, at: new Date(line.at).toISOString(), message: line.message, fields: line.fields };
}
