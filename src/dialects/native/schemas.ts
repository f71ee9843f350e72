/** Schemas shared by the native routes; they validate input, shape output and become the OpenAPI document. */
import { Type } from 'typebox';
import type { TSchema } from 'typebox';

export const ErrorSchema = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'Stable error code; see docs/errors.md' }),
      message: Type.String(),
      details: Type.Record(Type.String(), Type.Unknown()),
    }),
  },
  { $id: 'Error', description: 'Every error has this shape.' },
);

export const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

// Lists refuse query parameters they do not know: a misspelt filter (`?sender=`) must not quietly
// answer with everything.
export const PageQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
    after: Type.Optional(Type.String({ maxLength: 64, description: 'Cursor: the `next_cursor` of the previous page.' })),
  },
  { additionalProperties: false },
);

export function listOf<T extends TSchema>(item: T) {
  return Type.Object({ data: Type.Array(item), next_cursor: Type.Union([Type.String(), Type.Null()]) });
}

/** The error responses every authenticated route may give, for the OpenAPI document. */
export const commonErrors = {
  400: Type.Ref('Error'),
  401: Type.Ref('Error'),
  403: Type.Ref('Error'),
  404: Type.Ref('Error'),
} as const;

export const Timestamp = Type.String({ format: 'date-time' });
export const NullableTimestamp = Type.Union([Type.String({ format: 'date-time' }), Type.Null()]);
export const NullableString = Type.Union([Type.String(), Type.Null()]);

export { isoOrNull as iso } from '../../domain/time.js';

/** Cursor pagination over time-sortable ids: fetch one more than asked to know whether a next page exists. */
export function page<T extends { id: string }>(rows: T[], limit: number): { data: T[]; next_cursor: string | null } {
  const data = rows.slice(0, limit);
  return { data, next_cursor: rows.length > limit ? (data[data.length - 1]?.id ?? null) : null };
}
