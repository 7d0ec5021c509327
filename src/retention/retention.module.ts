import { Module } from '@nestjs/common';
import { StoreModule } from '../store/store.module';
import { RetentionService } from './retention.service';

@Module({ imports: [StoreModule], providers: [RetentionService], exports: [RetentionService] })
export class RetentionModule {}
