/** What can go wrong talking to a language model; each error says which host and why. */
import { Schema } from "effect"

/** The host could not be reached, dropped the connection, or answered 5xx or 429. Worth retrying elsewhere. */
export class LlmUnavailable extends Schema.TaggedError<LlmUnavailable>()("LlmUnavailable", {
  host: Schema.String,
  message: Schema.String,
  status: Schema.optional(Schema.Int),
  /** The host's `Retry-After` (on a 429 or 503): no retry comes sooner. */
  retryAfter: Schema.optional(Schema.DurationFromMillis)
}) {}

/** The host did not answer within the deadline; the request was aborted. */
export class LlmTimeout extends Schema.TaggedError<LlmTimeout>()("LlmTimeout", {
  host: Schema.String,
  operation: Schema.String,
  after: Schema.DurationFromMillis
}) {}

/** The host answered something Loom cannot use: malformed JSON or NDJSON, a wrong shape, tool-call arguments that do not decode. */
export class LlmBadResponse extends Schema.TaggedError<LlmBadResponse>()("LlmBadResponse", {
  host: Schema.String,
  message: Schema.String,
  /** The offending text, as received. */
  raw: Schema.String
}) {}

/** The host does not have the model. */
export class ModelNotFound extends Schema.TaggedError<ModelNotFound>()("ModelNotFound", {
  host: Schema.String,
  model: Schema.String,
  /** Every host asked, when none of them has it. */
  hosts: Schema.optional(Schema.Array(Schema.String))
}) {}

/**
 * A structured reply (`generateObject`, `streamObject`) that is not JSON or does not match
 * the schema, even after the model was told what was wrong. Not the host's fault: the
 * same host may well answer the next request right.
 */
export class LlmBadStructuredOutput extends Schema.TaggedError<LlmBadStructuredOutput>()("LlmBadStructuredOutput", {
  host: Schema.String,
  model: Schema.String,
  /** The first offending field as a dotted path (`address.city`, `tags.0`); empty when the reply as a whole is wrong. */
  field: Schema.String,
  message: Schema.String,
  /** The reply's text, as received. */
  raw: Schema.String
}) {}
