import { ApiProperty } from '@nestjs/swagger';

/** Every error response: `{ statusCode, error, message }`. */
export class ErrorResponseDto {
  @ApiProperty({ example: 400 }) statusCode!: number;
  @ApiProperty({ example: 'Bad Request' }) error!: string;
  @ApiProperty({ example: 'maxAttempts must not be less than 1' }) message!: string;
}
