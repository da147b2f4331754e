/**
 * A token count estimate without a tokenizer: BPE vocabularies average about four
 * characters per token in English prose, but never fewer tokens than words, and each
 * non-ASCII character tends to cost a token of its own.
 */
export const estimateTokens = (text: string): number => {
  if (text.length === 0) return 0
  let ascii = 0
  let other = 0
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) < 128) ascii++
    else other++
  }
  const words = text.split(/\s+/).filter((w) => w.length > 0).length
  return Math.max(words, Math.ceil(ascii / 4)) + other
}
