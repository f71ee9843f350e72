import { describe, expect, it } from 'vitest';
import { KEYWORD_LANGUAGES, classifyKeyword } from '../../src/domain/opt-out.js';

const en = { languages: ['en'] };

describe('stop and start keywords', () => {
  it('recognise the English carrier set as whole messages', () => {
    for (const word of ['STOP', 'stop', ' Stop ', 'STOPALL', 'unsubscribe', 'Cancel', 'end', 'QUIT', 'Stop!']) {
      expect(classifyKeyword(word, en), word).toBe('stop');
    }
    for (const word of ['START', 'unstop', 'Subscribe']) expect(classifyKeyword(word, en), word).toBe('start');
  });

  it('ignore the keyword inside a longer message', () => {
    expect(classifyKeyword("please don't stop", en)).toBeNull();
    expect(classifyKeyword('stop it now', en)).toBeNull();
    expect(classifyKeyword('', en)).toBeNull();
    expect(classifyKeyword(undefined, en)).toBeNull();
  });

  it('ignore accents and case in other languages', () => {
    expect(classifyKeyword('arret', { languages: ['fr'] })).toBe('stop');
    expect(classifyKeyword('ARRÊT', { languages: ['fr'] })).toBe('stop');
    expect(classifyKeyword('no mas', { languages: ['es'] })).toBe('stop');
    expect(classifyKeyword('No más', { languages: ['es'] })).toBe('stop');
    expect(classifyKeyword('kuendigen', { languages: ['de'] })).toBeNull();
    expect(classifyKeyword('Kündigen', { languages: ['de'] })).toBe('stop');
    expect(classifyKeyword('comecar', { languages: ['pt'] })).toBe('start');
    expect(classifyKeyword('disiscrivimi', { languages: ['it'] })).toBe('stop');
    expect(classifyKeyword('afmelden', { languages: ['nl'] })).toBe('stop');
  });

  it('use only the languages the sender lists', () => {
    expect(classifyKeyword('baja', en)).toBeNull();
    expect(classifyKeyword('baja', { languages: ['en', 'es'] })).toBe('stop');
    expect(classifyKeyword('stop', { languages: [] })).toBeNull();
  });

  it("add the sender's own words", () => {
    const options = { languages: ['en'], stop_words: ['Enough'], start_words: ['Back in'] };
    expect(classifyKeyword('enough!', options)).toBe('stop');
    expect(classifyKeyword('back  in', options)).toBe('start');
  });

  it('treat a word in both lists as stop', () => {
    expect(classifyKeyword('start', { languages: ['en'], stop_words: ['start'] })).toBe('stop');
  });

  it('cover at least seven languages, each with stop and start words', () => {
    expect(KEYWORD_LANGUAGES).toEqual(expect.arrayContaining(['en', 'es', 'fr', 'de', 'pt', 'it', 'nl']));
  });
});
