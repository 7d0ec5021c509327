import { Logger, Module } from '@nestjs/common';
import { KeelLogger } from '../src/logging/keel-logger';
import { closeAllApps, startApp } from './support/app';

/**
 * A line logged while the app is being built reaches the logger when it is logged, not once the
 * app is built: its `time` is when it happened (recovery, store and module lines alike).
 */

afterEach(closeAllApps);

const MARKER = 'a line logged while the modules are built';

describe('startup lines', () => {
  it('are written as they happen, not buffered until the app is built', async () => {
    const received = jest.spyOn(KeelLogger.prototype, 'log');
    let seenByTheNextProvider: boolean | undefined;

    @Module({
      providers: [
        {
          provide: 'FIRST',
          useFactory: () => {
            new Logger('Spec').log(MARKER);
            return 1;
          },
        },
        {
          provide: 'SECOND',
          inject: ['FIRST'],
          useFactory: () => {
            seenByTheNextProvider = received.mock.calls.some((call) => call[0] === MARKER);
            return 2;
          },
        },
      ],
    })
    class MarkerModule {}

    try {
      await startApp({}, [MarkerModule]);
      expect(received.mock.calls.some((call) => call[0] === MARKER)).toBe(true);
      expect(seenByTheNextProvider).toBe(true);
    } finally {
      received.mockRestore();
    }
  });
});
