import { CanActivate, ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { nodeRequest, nodeResponse } from '../common/http-reply';
import { KEEL_CONFIG, type KeelConfig } from '../config/keel-config';
import { ApiKeyCheck } from './api-key';

/**
 * With an API key set, Keel's own routes require `Authorization: Bearer <key>`: the guard is put on
 * Keel's controllers that need it (`@UseGuards(ApiKeyGuard)`), never on the application, so a host
 * application's routes stay as they are. The request gate (`src/gate`) checks the key earlier,
 * before the body is read, on Express and Fastify; this is the same check wherever no gate runs.
 * It needs only the configuration, which `KeelModule` provides everywhere.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  private readonly check: ApiKeyCheck;

  constructor(@Inject(KEEL_CONFIG) config: KeelConfig) {
    this.check = new ApiKeyCheck(config.apiKey);
  }

  canActivate(context: ExecutionContext): boolean {
    if (!this.check.required) return true;
    const http = context.switchToHttp();
    const reason = this.check.refusal(nodeRequest(http.getRequest<object>()).headers.authorization);
    if (reason === undefined) return true;
    throw this.check.unauthorized(nodeResponse(http.getResponse<object>()), reason);
  }
}
