import { ApiProperty } from './swagger';

/** Every error response: `{ statusCode, error, message }`. */
export class ErrorResponseDto {
  @ApiProperty({ type: 'integer', example: 400, description: 'The HTTP status.' }) statusCode!: number;
  @ApiProperty({ example: 'Bad Request', description: 'Its reason phrase.' }) error!: string;
  @ApiProperty({ example: 'maxAttempts must not be less than 1', description: 'What went wrong.' }) message!: string;
}
