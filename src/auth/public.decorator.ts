import { SetMetadata } from '@nestjs/common';

export const PUBLIC_ROUTE = 'KEEL:PUBLIC_ROUTE';

/** A route that stays open when `API_KEY` is set (health, metrics). Every other route needs the key. */
export const Public = (): ClassDecorator & MethodDecorator => SetMetadata(PUBLIC_ROUTE, true);
