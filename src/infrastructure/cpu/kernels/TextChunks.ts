/**
 * Splits text into overlapping chunks for retrieval. Chunks end and start at word
 * boundaries where possible, so a word no longer than `size` is always whole in some
 * chunk; each chunk is at most `size` characters and repeats about `overlap` characters
 * of the one before.
 */
const isSpace = (code: number) => code === 32 || (code >= 9 && code <= 13)

export const chunkText = (text: string, size: number, overlap: number): ReadonlyArray<string> => {
  if (size <= 0) throw new RangeError("size must be positive")
  const back = Math.max(0, Math.min(overlap, size - 1))
  const chunks: Array<string> = []
  let start = 0
  while (start < text.length) {
    while (start < text.length && isSpace(text.charCodeAt(start))) start++
    if (start >= text.length) break
    let end = Math.min(text.length, start + size)
    if (end < text.length && !isSpace(text.charCodeAt(end))) {
      let cut = end - 1
      while (cut > start && !isSpace(text.charCodeAt(cut))) cut--
      if (cut > start) end = cut // else one word longer than `size`: cut it
    }
    const chunk = text.slice(start, end).trimEnd()
    if (chunk.length > 0) chunks.push(chunk)
    if (end >= text.length) break
    // Step back by the overlap, then forward to the start of a word.
    let next = end - back
    if (next <= start) next = end
    while (next < end && next > 0 && !isSpace(text.charCodeAt(next - 1))) next++
    start = next
  }
  return chunks
}
