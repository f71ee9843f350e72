/**
 * Request validation with one difference from Fastify's default: a JSON body is taken as sent,
 * never coerced (`"text": ["hi"]` is refused, not sent as "hi"; `"human_agent": "false"` is
 * refused, not read as false), while query strings, path parameters and headers, which are text on
 * the wire, are still coerced to the numbers and booleans their schemas name ("50" -> 50). Ajv's
 * coercion is one switch per instance, so two compilers from Fastify's own `@fastify/ajv-compiler`
 * share the app's schemas and options and differ in that switch alone.
 */
import { AjvCompiler } from '@fastify/ajv-compiler';
import type { FastifyServerOptions } from 'fastify';

type BuildValidator = NonNullable<NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>['buildValidator']>;

const strictPool = AjvCompiler();
const coercingPool = AjvCompiler();

const buildValidator: BuildValidator = (externalSchemas, ajvOptions) => {
  const options = ajvOptions as { customOptions?: Record<string, unknown>; plugins?: unknown[] };
  const forBody = strictPool(externalSchemas, { ...options, customOptions: { ...options.customOptions, coerceTypes: false } } as never);
  const forText = coercingPool(externalSchemas, { ...options, customOptions: { ...options.customOptions } } as never);
  return (route) => (route.httpPart === 'body' ? forBody(route) : forText(route));
};

export const validationOptions: Pick<FastifyServerOptions, 'schemaController'> = {
  schemaController: { compilersFactory: { buildValidator } },
};
