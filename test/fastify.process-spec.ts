import { cleanupProcesses, startKeel, tempSqliteFile, useProcessAdapter } from './support/process';
import { waitFor } from './support/wait';

/**
 * The process specs of the HTTP server's life (startup, submissions, SIGTERM and SIGINT, the
 * bound on client connections at shutdown, restart and recovery, the request and operator log
 * lines) again, with the built server on Fastify (HTTP_ADAPTER=fastify): each suite as it stands.
 * Needs `npm run build` first.
 */
const PROCESS_SUITES = [
  './startup.process-spec',
  './shutdown.process-spec',
  './shutdown-connections.process-spec',
  './recovery.process-spec',
  './logging.process-spec',
  './operator-logs.process-spec',
];

describe.each(PROCESS_SUITES)('on Fastify: %s', (suite) => {
  useProcessAdapter('fastify');

  it('starts the server on Fastify', async () => {
    const keel = await startKeel({ sqliteFile: tempSqliteFile(), env: { LOG_LEVEL: 'info' } });
    await waitFor(() => /listening on http:\S+ \(Fastify;/.test(keel.stdout), 'the listening line naming Fastify');
    await cleanupProcesses();
  });

  // eslint-disable-next-line @typescript-eslint/no-require-imports -- registers the suite's blocks inside this one
  require(suite);
});
