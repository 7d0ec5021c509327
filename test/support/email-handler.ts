import { Module } from '@nestjs/common';
import { Type } from 'class-transformer';
import { ArrayMaxSize, IsArray, IsEmail, IsIn, IsInt, IsOptional, IsString, MaxLength, Min, ValidateNested } from 'class-validator';
import { JobHandler, JobHandlerBase } from '../../src/core/job-handler';

/**
 * An application's own job type, registered through its own module: the OpenAPI document must
 * describe its payload from these class-validator decorators, nested class included.
 */
export class EmailAttachment {
  @IsString()
  @MaxLength(255)
  name!: string;

  @IsInt()
  @Min(0)
  bytes!: number;
}

export class EmailPayload {
  @IsEmail()
  to!: string;

  @IsString()
  @MaxLength(200)
  subject!: string;

  @IsOptional()
  @IsIn(['low', 'normal', 'high'])
  importance?: 'low' | 'normal' | 'high';

  @IsOptional()
  @IsArray()
  @ArrayMaxSize(10)
  @ValidateNested({ each: true })
  @Type(() => EmailAttachment)
  attachments?: EmailAttachment[];
}

@JobHandler('email', { payload: EmailPayload })
export class EmailHandler extends JobHandlerBase<EmailPayload, { sent: boolean }> {
  async handle(): Promise<{ sent: boolean }> {
    return { sent: true };
  }
}

@Module({ providers: [EmailHandler] })
export class EmailModule {}
