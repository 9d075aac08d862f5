"""Text: CTC decoding (greedy, or beam search with a language model), the written form (numbers, names, sentences) and WER/CER scoring."""
