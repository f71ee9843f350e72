/**
 * Opt-out keywords: a customer who writes only a stop word is opted out; a start word reverses it.
 * The whole message must be the keyword (so "please don't stop" is not a stop), compared without
 * case, accents, surrounding spaces or trailing punctuation.
 */

export type KeywordLanguage = 'en' | 'es' | 'fr' | 'de' | 'pt' | 'it' | 'nl';

export interface LanguageKeywords {
  stop: readonly string[];
  start: readonly string[];
}

/**
 * Defaults per language. English follows the carrier-industry set (CTIA: STOP, STOPALL, UNSUBSCRIBE,
 * CANCEL, END, QUIT / START, UNSTOP); the others are the common equivalents. Plain "YES" is left out
 * on purpose: it answers ordinary questions and would resubscribe people by accident.
 */
export const DEFAULT_KEYWORDS: Readonly<Record<KeywordLanguage, LanguageKeywords>> = {
  en: {
    stop: ['STOP', 'STOPALL', 'STOP ALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT', 'OPTOUT', 'OPT OUT', 'OPT-OUT', 'REVOKE'],
    start: ['START', 'UNSTOP', 'SUBSCRIBE', 'RESUME', 'OPTIN', 'OPT IN', 'OPT-IN'],
  },
  es: {
    stop: ['PARAR', 'PARA', 'ALTO', 'DETENER', 'BAJA', 'DAR DE BAJA', 'DARME DE BAJA', 'CANCELAR', 'NO MÁS', 'DESUSCRIBIR', 'DESUSCRIBIRME'],
    start: ['ALTA', 'DAR DE ALTA', 'SUSCRIBIR', 'SUSCRIBIRME', 'INICIAR', 'COMENZAR', 'REANUDAR'],
  },
  fr: {
    stop: ['STOP', 'ARRÊT', 'ARRÊTER', 'ARRETE', 'DÉSABONNER', 'DÉSABONNEMENT', 'DÉSINSCRIRE', 'ANNULER'],
    start: ['DÉMARRER', 'COMMENCER', 'ABONNER', "M'ABONNER", 'REPRENDRE'],
  },
  de: {
    stop: ['STOPP', 'STOP', 'ABMELDEN', 'ABBESTELLEN', 'BEENDEN', 'KÜNDIGEN', 'AUFHÖREN'],
    start: ['START', 'STARTEN', 'ANMELDEN', 'ABONNIEREN'],
  },
  pt: {
    stop: ['PARAR', 'PARE', 'SAIR', 'CANCELAR', 'DESCADASTRAR', 'DESINSCREVER', 'DESCADASTRE'],
    start: ['INICIAR', 'COMEÇAR', 'VOLTAR', 'INSCREVER', 'ASSINAR', 'CADASTRAR'],
  },
  it: {
    stop: ['STOP', 'FERMA', 'BASTA', 'ANNULLA', 'CANCELLA', 'DISISCRIVI', 'DISISCRIVIMI', 'ESCI'],
    start: ['INIZIA', 'AVVIA', 'ISCRIVI', 'ISCRIVIMI', 'RIPRENDI'],
  },
  nl: {
    stop: ['STOP', 'STOPPEN', 'AFMELDEN', 'UITSCHRIJVEN', 'OPZEGGEN'],
    start: ['START', 'STARTEN', 'AANMELDEN', 'INSCHRIJVEN'],
  },
};

export const KEYWORD_LANGUAGES = Object.keys(DEFAULT_KEYWORDS) as KeywordLanguage[];

/**
 * The comparable form of a message: accents removed (NFD + dropping combining marks), upper case,
 * inner whitespace collapsed, and surrounding spaces and punctuation ("Stop!", "stop.") trimmed.
 */
export function normalizeKeyword(text: string): string {
  return text
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toUpperCase()
    .replace(/\s+/g, ' ')
    .replace(/^[\s.,;:!?¡¿"'«»()-]+|[\s.,;:!?¡¿"'«»()-]+$/g, '');
}

export interface KeywordOptions {
  /** Languages whose defaults apply; pass `[]` to use only the sender's own words. */
  languages: readonly string[];
  /** The sender's extra stop words (added to the defaults). */
  stop_words?: readonly string[];
  /** The sender's extra start words (added to the defaults). */
  start_words?: readonly string[];
}

function isLanguage(value: string): value is KeywordLanguage {
  return Object.prototype.hasOwnProperty.call(DEFAULT_KEYWORDS, value);
}

/** Whether a language tag (`es`, `pt-BR`, `fr_CA`) names a language with default words. */
export function isKeywordLanguage(tag: string): boolean {
  return /^[A-Za-z]{2}(?:[-_][A-Za-z0-9]{2,8})?$/.test(tag) && isLanguage(tag.toLowerCase().slice(0, 2));
}

/**
 * The normalised stop and start sets for a sender's settings. Unknown languages are ignored here
 * (the API refuses them when the settings are changed).
 */
export function keywordSets(options: KeywordOptions): { stop: Set<string>; start: Set<string> } {
  const stop = new Set<string>();
  const start = new Set<string>();
  for (const raw of options.languages) {
    const language = raw.toLowerCase().slice(0, 2);
    if (!isLanguage(language)) continue;
    for (const word of DEFAULT_KEYWORDS[language].stop) stop.add(normalizeKeyword(word));
    for (const word of DEFAULT_KEYWORDS[language].start) start.add(normalizeKeyword(word));
  }
  for (const word of options.stop_words ?? []) stop.add(normalizeKeyword(word));
  for (const word of options.start_words ?? []) start.add(normalizeKeyword(word));
  stop.delete('');
  start.delete('');
  return { stop, start };
}

/** Senders' settings repeat on every inbound message; 256 distinct settings cover many senders. */
const SET_CACHE_LIMIT = 256;
const setCache = new Map<string, { stop: Set<string>; start: Set<string> }>();

function cachedSets(options: KeywordOptions): { stop: Set<string>; start: Set<string> } {
  const key = JSON.stringify([options.languages, options.stop_words ?? [], options.start_words ?? []]);
  let sets = setCache.get(key);
  if (sets === undefined) {
    sets = keywordSets(options);
    if (setCache.size >= SET_CACHE_LIMIT) setCache.clear();
    setCache.set(key, sets);
  }
  return sets;
}

/**
 * `'stop'` when the whole message is a stop word, `'start'` when it is a start word, else null.
 * A word in both lists counts as stop: wrongly staying silent is better than wrongly messaging.
 */
export function classifyKeyword(text: string | null | undefined, options: KeywordOptions): 'stop' | 'start' | null {
  if (text === null || text === undefined) return null;
  const normalized = normalizeKeyword(text);
  if (normalized === '') return null;
  const { stop, start } = cachedSets(options);
  if (stop.has(normalized)) return 'stop';
  if (start.has(normalized)) return 'start';
  return null;
}
