/**
 * The review workflow, Loom's human-in-the-loop example: a model writes a draft, then
 * two people review it at once (an editor and a legal reviewer, two nodes of one step,
 * each waiting on its own interrupt); any note sends the draft back to the model with
 * the notes, until both approve or `maxRounds` drafts were written. The run waits
 * (status `waiting`) while a review is pending, through restarts, and each review is
 * resumed on its own: `POST /v1/runs/:id/resume {"interrupt": key, "value": {...}}`.
 */
import { Effect, Schema } from "effect"
import { ChatMessage, ChatRequest } from "../../../domain/Chat.js"
import { LanguageModel } from "../../../domain/LanguageModel.js"
import * as UsageMeter from "../../../domain/UsageMeter.js"
import * as Interrupt from "../../Interrupt.js"
import * as Workflow from "../../Workflow.js"

export const Review = Schema.Struct({
  round: Schema.NonNegativeInt,
  reviewer: Schema.String,
  approved: Schema.Boolean,
  note: Schema.optional(Schema.String)
})
export type Review = typeof Review.Type

export const ReviewState = Schema.Struct({
  topic: Schema.String,
  draft: Schema.String,
  /** Drafts written so far. */
  round: Schema.NonNegativeInt,
  reviews: Schema.Array(Review)
})
export type ReviewState = typeof ReviewState.Type

export const initial = (topic: string): ReviewState => ({ topic, draft: "", round: 0, reviews: [] })

/** What a reviewer is shown, and what they answer. */
export const Approval = Interrupt.make("approval", {
  payload: Schema.Struct({ reviewer: Schema.String, round: Schema.NonNegativeInt, draft: Schema.String }),
  resume: Schema.Struct({ approved: Schema.Boolean, note: Schema.optional(Schema.String) })
})

export const reviewers = ["editor", "legal"] as const

export const prompt = "You are the writer. Write a short paragraph on the topic; follow the reviewers' notes."

export interface Options {
  readonly model: string
  /** Drafts at most (default 3): after that the run ends with the last draft and its reviews. */
  readonly maxRounds?: number
}

/** The notes of the last round, for the next draft. */
const notesOf = (state: ReviewState) =>
  state.reviews.filter((review) => review.round === state.round && review.note !== undefined)
    .map((review) => `${review.reviewer}: ${review.note}`)

/** Builds the graph; needs a `LanguageModel`. */
export const make = (options: Options) =>
  Effect.gen(function*() {
    const llm = UsageMeter.metered(yield* LanguageModel)
    const maxRounds = options.maxRounds ?? 3
    const review = (reviewer: string) => (state: ReviewState) =>
      Effect.map(
        Approval.ask({ reviewer, round: state.round, draft: state.draft }),
        (answer): Partial<ReviewState> => ({ reviews: [{ round: state.round, reviewer, ...answer }] })
      )
    const approved = (state: ReviewState) =>
      reviewers.every((reviewer) =>
        state.reviews.some((review) => review.round === state.round && review.reviewer === reviewer && review.approved)
      )
    const next = (state: ReviewState) => (approved(state) || state.round >= maxRounds ? Workflow.END : "draft")
    return yield* Workflow.make({
      name: "review",
      state: ReviewState,
      start: "draft",
      interrupts: [Approval],
      nodes: {
        draft: (state) =>
          Effect.map(
            llm.chat(
              new ChatRequest({
                model: options.model,
                messages: [
                  new ChatMessage({ role: "system", content: prompt }),
                  new ChatMessage({
                    role: "user",
                    content: [`Topic: ${state.topic}`, ...notesOf(state).map((note) => `Note from ${note}`)].join("\n")
                  })
                ]
              })
            ),
            (response) => ({ draft: response.message.content, round: state.round + 1 })
          ),
        editor: review("editor"),
        legal: review("legal")
      },
      edges: { draft: [...reviewers], editor: next, legal: next },
      reducers: { reviews: Workflow.append }
    })
  })
