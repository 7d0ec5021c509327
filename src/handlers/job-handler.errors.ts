export class DuplicateJobHandlerError extends Error {
  override readonly name = 'DuplicateJobHandlerError';
  constructor(type: string, first: string, second: string) {
    super(`two job handlers for type "${type}": ${first} and ${second}. Each job type has exactly one @JobHandler; remove or rename one.`);
  }
}

export class InvalidJobHandlerError extends Error {
  override readonly name = 'InvalidJobHandlerError';
  constructor(className: string, type: string) {
    super(
      `${className} is marked @JobHandler("${type}") but does not extend JobHandlerBase; make it extend JobHandlerBase and implement handle(job, context).`,
    );
  }
}

export class RequestScopedJobHandlerError extends Error {
  override readonly name = 'RequestScopedJobHandlerError';
  constructor(className: string, type: string) {
    super(
      `${className} (@JobHandler("${type}")) is request-scoped, or depends on a request-scoped provider: jobs run outside any request. ` +
        'Make it and its dependencies singletons (the default scope).',
    );
  }
}
