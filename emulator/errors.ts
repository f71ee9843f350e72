import { randomBytes } from 'node:crypto';

/**
 * Errors in the shapes the two surfaces answer with. Graph API errors use Meta's body
 * `{"error": {message, type, code, error_subcode, fbtrace_id}}`; the control API uses
 * `{"error": {code, message}}` with a stable string code.
 */

export type GraphErrorType = 'OAuthException' | 'IGApiException' | 'GraphMethodException';

export interface GraphErrorBody {
  error: {
    message: string;
    type: GraphErrorType;
    code: number;
    error_subcode?: number;
    is_transient?: boolean;
    error_user_title?: string;
    error_user_msg?: string;
    fbtrace_id: string;
  };
}

export class GraphError extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
    readonly subcode?: number,
    readonly type: GraphErrorType = 'OAuthException',
    readonly extra: { is_transient?: boolean; error_user_title?: string; error_user_msg?: string } = {},
  ) {
    super(message);
    this.name = 'GraphError';
  }

  /** The same error answered for an Instagram recipient: Meta names the type differently there. */
  forInstagram(): GraphError {
    return new GraphError(this.status, this.code, this.message, this.subcode, 'IGApiException', this.extra);
  }

  body(): GraphErrorBody {
    const error: GraphErrorBody['error'] = { message: this.message, type: this.type, code: this.code, fbtrace_id: '' };
    if (this.subcode !== undefined) error.error_subcode = this.subcode;
    Object.assign(error, this.extra);
    // Meta puts the trace id last.
    delete (error as { fbtrace_id?: string }).fbtrace_id;
    error.fbtrace_id = fbtraceId();
    return { error };
  }
}

function fbtraceId(): string {
  // fbtrace ids are 11 URL-safe characters, for example "GZLdPD3DuDR".
  return randomBytes(9).toString('base64url').slice(0, 11);
}

/** Meta's messages carry the code in front: "(#100) ...". */
function numbered(code: number, text: string): string {
  return `(#${code}) ${text}`;
}

/** Constructors for every error the emulator answers, in one place so messages stay consistent. */
export const graphErrors = {
  missingToken: () => new GraphError(400, 104, 'An access token is required to request this resource.'),
  unparsableToken: () => new GraphError(400, 190, 'Invalid OAuth access token - Cannot parse access token'),
  revokedToken: () =>
    new GraphError(
      400,
      190,
      'Error validating access token: The session has been invalidated because the user changed their password or Facebook has changed the session for security reasons.',
      460,
    ),
  expiredToken: (when: string) =>
    new GraphError(400, 190, `Error validating access token: Session has expired on ${when}.`, 463),
  tokenForOtherPage: () =>
    new GraphError(400, 190, 'Invalid OAuth access token - the token does not belong to this Page.'),
  badAppsecretProof: () => new GraphError(400, 100, 'Invalid appsecret_proof provided in the API argument'),
  missingAppsecretProof: () =>
    new GraphError(400, 100, 'API calls from the server require an appsecret_proof argument'),
  pageTokenRequired: () =>
    new GraphError(400, 210, numbered(210, 'A page access token is required to request this resource.')),
  pagesMessagingRequired: () =>
    new GraphError(400, 230, numbered(230, 'Requires pages_messaging permission to manage the object')),
  userConsentRequired: () => new GraphError(400, 230, 'User consent is required to access user profile', undefined, 'IGApiException'),
  unsupportedGet: (id: string) =>
    new GraphError(
      400,
      100,
      `Unsupported get request. Object with ID '${id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api`,
      33,
      'GraphMethodException',
    ),
  unsupportedPost: (id: string) =>
    new GraphError(
      400,
      100,
      `Unsupported post request. Object with ID '${id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api`,
      33,
      'GraphMethodException',
    ),
  unknownPath: (path: string) => new GraphError(400, 2500, `Unknown path components: ${path}`),
  invalidParam: (text: string, subcode?: number) => new GraphError(400, 100, numbered(100, text), subcode),
  requiredParam: (name: string) => new GraphError(400, 100, numbered(100, `The parameter ${name} is required`)),
  nonexistingField: (field: string, node: string) =>
    new GraphError(400, 100, numbered(100, `Tried accessing nonexisting field (${field}) on node type (${node})`)),
  noMatchingUser: () => new GraphError(400, 100, numbered(100, 'No matching user found'), 2018001),
  outsideWindow: () =>
    new GraphError(400, 10, numbered(10, 'This message is sent outside of allowed window.'), 2018278),
  outsideWindowInstagram: () =>
    new GraphError(403, 10, 'This message is sent outside of allowed window.', 2534022, 'IGApiException'),
  personUnavailable: () => new GraphError(400, 551, numbered(551, "This person isn't available right now."), 1545041),
  noProfile: () => new GraphError(400, 100, numbered(100, 'No profile available for this user.'), 2018218),
  uploadFailure: () => new GraphError(400, 100, numbered(100, 'Upload attachment failure.'), 2018047),
  attachmentTooLarge: () => new GraphError(400, 100, numbered(100, 'Attachment size exceeds allowable limit'), 2018109),
  invalidAttachmentId: () => new GraphError(400, 100, numbered(100, 'The attachment_id is not valid for this Page'), 2018102),
  rateLimited: () => new GraphError(400, 613, numbered(613, 'Calls to this api have exceeded the rate limit.')),
  transient: () =>
    new GraphError(500, 2, 'An unexpected error has occurred. Please retry your request later.', undefined, 'OAuthException', {
      is_transient: true,
    }),
  oauthCodeUsed: () => new GraphError(400, 100, 'This authorization code has been used.', 36009),
  oauthCodeInvalid: () => new GraphError(400, 100, 'Invalid verification code format.', 36008),
  oauthCodeExpired: () => new GraphError(400, 100, 'This authorization code has expired.', 36007),
  oauthRedirectMismatch: () =>
    new GraphError(
      400,
      100,
      'Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request',
      36008,
    ),
  badClientSecret: () => new GraphError(400, 1, 'Error validating client secret.'),
  unknownApp: () => new GraphError(400, 101, 'Error validating application. Invalid application ID.'),
};

export class ControlError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ControlError';
  }

  body(): { error: { code: string; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

export const controlErrors = {
  notFound: (what: string, id: string) => new ControlError(404, 'not_found', `${what} ${id} does not exist`),
  invalid: (message: string) => new ControlError(400, 'invalid_request', message),
  conflict: (message: string) => new ControlError(409, 'conflict', message),
};
