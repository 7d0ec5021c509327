import { Module } from '@nestjs/common';
import { DashboardController } from './dashboard.controller';
import { DashboardFiles } from './dashboard-files';

/**
 * `GET /dashboard`: a page of plain ES modules and CSS over the `/v1` routes and `/v1/events`.
 * It talks to Keel over HTTP like any client, so it imports no service of ours.
 */
@Module({ controllers: [DashboardController], providers: [DashboardFiles] })
export class DashboardModule {}
