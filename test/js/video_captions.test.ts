// Captions of real data meet the tokenizer: words outside the vocabulary become <unk>
// and the caller is told which (returned and warned), words past maxLength likewise;
// empty and non-ASCII text; a vocabulary cut by frequency.
import * as ts from '../../lib';
import { PAD_ID, UNK_ID, words } from '../../lib/models/tokenizer';

describe('Tokenizer on real captions', () => {
  test('unknown words map to <unk> and are returned and reported, never dropped', () => {
    const tok = ts.Tokenizer.fromCaptions(['a red car drives', 'a dog runs']);
    const heard: [string[], string[], string][] = [];
    tok.onUnknown = (u, t, text) => heard.push([u, t, text]);
    const r = tok.tokenize('A blue car flies');
    expect(r.ids).toEqual([tok.ids('a')[0], UNK_ID, tok.ids('car')[0], UNK_ID]);
    expect(r.unknown).toEqual(['blue', 'flies']);
    expect(r.truncated).toEqual([]);
    const h = tok.encodeHost(['A blue car flies', 'a dog runs']);
    expect(h.unknown).toEqual([['blue', 'flies'], []]);
    expect(Array.from(h.mask.subarray(0, 4))).toEqual([1, 1, 1, 1]); // the unknown words keep their places
    expect(heard).toEqual([[['blue', 'flies'], [], 'A blue car flies']]);
    // Past maxLength (4 here, the longest caption): left out, and said so.
    const long = tok.tokenize('a red car drives far away');
    expect(long.ids).toHaveLength(4);
    expect(long.truncated).toEqual(['far', 'away']);
    expect(long.unknown).toEqual([]);
  });

  test('the default hook warns once per new word, naming it', () => {
    const tok = ts.Tokenizer.fromCaptions(['the digit 7 moves right']);
    const emit = jest.spyOn(process, 'emitWarning').mockImplementation(() => {});
    try {
      tok.encodeHost(['the digit 9 moves sideways', 'the digit 9 moves right']);
      tok.encodeHost(['the digit 9 moves sideways']);
      expect(emit).toHaveBeenCalledTimes(1);
      expect(String(emit.mock.calls[0][0])).toBe(`Tokenizer: in "the digit 9 moves sideways": '9', 'sideways' not in the vocabulary of 5 words (encoded as <unk>)`);
      expect(emit.mock.calls[0][1]).toBe('TesseraTokenizerWarning');
    } finally {
      emit.mockRestore();
    }
  });

  test('empty, punctuation-only and non-ASCII text', () => {
    const tok = ts.Tokenizer.fromCaptions(['Café au lait', '猫が走る', 'Straße im Schnee', 'naïve 2 cats']);
    expect(words('Café au lait!')).toEqual(['café', 'au', 'lait']);
    expect(words('ＣＡＦＥ')).toEqual(['cafe']); // NFKC folds full-width letters
    expect(words('猫が走る')).toEqual(['猫', 'が', '走', 'る']);
    expect(words('  ...  ')).toEqual([]);
    expect(tok.tokenize('').ids).toEqual([]); // the null condition: all padding
    expect(tok.tokenize('?!').ids).toEqual([]);
    expect(tok.tokenize('café').unknown).toEqual([]);
    expect(tok.tokenize('猫が走る').ids.every((id) => id > UNK_ID)).toBe(true);
    expect(tok.tokenize('犬が走る').unknown).toEqual(['犬']);
    expect(tok.decode(tok.ids('straße im schnee'))).toBe('straße im schnee');
    const h = tok.encodeHost(['']);
    expect(Array.from(h.ids).every((id) => id === PAD_ID) && Array.from(h.mask).every((m) => m === 0)).toBe(true);
    expect(() => tok.tokenize(3 as unknown as string)).toThrow(/Tokenizer.tokenize: expected a string prompt, got number/);
    // The demo's ASCII captions tokenize as before (the shipped model's vocabulary).
    expect(words('the digit 7 moves up and left')).toEqual(['the', 'digit', '7', 'moves', 'up', 'and', 'left']);
  });

  test('a vocabulary cut by frequency: maxVocab and minCount', () => {
    const caps = ['a cat sits', 'a cat runs', 'a dog runs', 'a bird'];
    expect(ts.Tokenizer.fromCaptions(caps).vocab).toEqual(['<pad>', '<unk>', 'a', 'cat', 'sits', 'runs', 'dog', 'bird']);
    expect(ts.Tokenizer.fromCaptions(caps, { minCount: 2 }).vocab).toEqual(['<pad>', '<unk>', 'a', 'cat', 'runs']);
    const top = ts.Tokenizer.fromCaptions(caps, { maxVocab: 2 });
    expect(top.vocab).toEqual(['<pad>', '<unk>', 'a', 'cat']);
    top.onUnknown = null;
    expect(top.tokenize('a dog runs').unknown).toEqual(['dog', 'runs']);
    expect(() => ts.Tokenizer.fromCaptions(caps, { maxVocab: 0 })).toThrow(/expected maxVocab to be a positive integer, got 0/);
  });
});
