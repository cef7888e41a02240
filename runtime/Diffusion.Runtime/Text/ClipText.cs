using System.Globalization;
using System.Text;

namespace Diffusion.Runtime.Text;

/// <summary>
/// What CLIP's tokenizer does to a prompt before byte-level BPE — the parts Microsoft.ML.Tokenizers has no option for:
/// transformers' BasicTokenizer clean-up (the path CLIPTokenizer takes without ftfy: control characters dropped,
/// whitespace made spaces, spaces around CJK ideographs, NFC, split on whitespace, each word lower-cased as Python's
/// <c>str.lower</c> does) and CLIP's pre-tokenizer pattern
/// <c>&lt;|startoftext|&gt;|&lt;|endoftext|&gt;|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+</c>, scanned by code
/// point (a .NET regex would see a letter outside the BMP as two surrogates).
/// </summary>
public static class ClipText
{
    private static readonly string[] Literals = ["<|startoftext|>", "<|endoftext|>"];
    private static readonly string[] Contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

    /// <summary>BasicTokenizer(strip_accents=False, do_split_on_punc=False): the words, joined by single spaces.</summary>
    public static string Clean(string text)
    {
        var cleaned = new StringBuilder(text.Length);
        foreach (var rune in text.EnumerateRunes()) // a lone surrogate arrives as U+FFFD, which is dropped
        {
            if (rune.Value == 0 || rune.Value == 0xFFFD || IsControl(rune)) continue;
            if (IsWhitespace(rune)) cleaned.Append(' ');
            else if (IsCjkIdeograph(rune.Value)) cleaned.Append(' ').Append(rune.ToString()).Append(' ');
            else cleaned.Append(rune.ToString());
        }
        var normalized = Nfc.Normalize(cleaned.ToString());
        var words = normalized.Split([' ', '\u2028', '\u2029'], StringSplitOptions.RemoveEmptyEntries);
        return string.Join(' ', words.Select(PythonLower));
    }

    /// <summary>The pre-tokens of cleaned text, as CLIP's pattern finds them (no match: the character is skipped).</summary>
    public static List<string> PreTokenize(string cleaned)
    {
        var tokens = new List<string>();
        int i = 0;
        while (i < cleaned.Length)
        {
            int length = MatchAt(cleaned, i);
            if (length == 0) { i += char.IsSurrogatePair(cleaned, i) ? 2 : 1; continue; }
            tokens.Add(cleaned.Substring(i, length));
            i += length;
        }
        return tokens;
    }

    private static int MatchAt(string s, int i)
    {
        foreach (var literal in Literals.Concat(Contractions))
            if (string.CompareOrdinal(s, i, literal, 0, literal.Length) == 0) return literal.Length;
        var first = Rune.GetRuneAt(s, i);
        if (IsLetter(first)) return RunLength(s, i, IsLetter);
        if (IsNumber(first)) return first.Utf16SequenceLength;
        if (first.Value == ' ') return 0;
        return RunLength(s, i, r => r.Value != ' ' && !IsLetter(r) && !IsNumber(r));
    }

    private static int RunLength(string s, int start, Func<Rune, bool> inClass)
    {
        int i = start;
        while (i < s.Length && Rune.GetRuneAt(s, i) is var r && inClass(r)) i += r.Utf16SequenceLength;
        return i - start;
    }

    private static bool IsLetter(Rune r) => Rune.GetUnicodeCategory(r) is UnicodeCategory.UppercaseLetter
        or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter
        or UnicodeCategory.OtherLetter;

    private static bool IsNumber(Rune r) => Rune.GetUnicodeCategory(r) is UnicodeCategory.DecimalDigitNumber
        or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;

    /// <summary>transformers' _is_control: a C* category, except tab, newline and carriage return.</summary>
    private static bool IsControl(Rune r) => r.Value is not ('\t' or '\n' or '\r')
        && Rune.GetUnicodeCategory(r) is UnicodeCategory.Control or UnicodeCategory.Format
            or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned;

    /// <summary>transformers' _is_whitespace: space, tab, newline, carriage return, or a space separator (Zs).</summary>
    private static bool IsWhitespace(Rune r) => r.Value is ' ' or '\t' or '\n' or '\r'
        || Rune.GetUnicodeCategory(r) == UnicodeCategory.SpaceSeparator;

    /// <summary>The CJK blocks BasicTokenizer puts spaces around.</summary>
    private static bool IsCjkIdeograph(int cp) => cp is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF
        or >= 0x20000 and <= 0x2A6DF or >= 0x2A700 and <= 0x2B73F or >= 0x2B740 and <= 0x2B81F
        or >= 0x2B820 and <= 0x2CEAF or >= 0xF900 and <= 0xFAFF or >= 0x2F800 and <= 0x2FA1F;

    /// <summary>
    /// Python's <c>str.lower</c>: Unicode's simple lower-case mapping, plus its one unconditional special case (İ →
    /// i + combining dot above) and the final-sigma rule (Σ → ς at the end of a word).
    /// </summary>
    public static string PythonLower(string word)
    {
        var runes = word.EnumerateRunes().ToArray();
        var lower = new StringBuilder(word.Length);
        for (int k = 0; k < runes.Length; k++)
        {
            var r = runes[k];
            if (r.Value == 0x130) lower.Append("i\u0307");
            else if (r.Value == 0x3A3) lower.Append(IsFinalSigma(runes, k) ? 'ς' : 'σ');
            else lower.Append(Rune.ToLowerInvariant(r).ToString());
        }
        return lower.ToString();
    }

    /// <summary>Unicode's Final_Sigma: a cased letter before (case-ignorables skipped), none after.</summary>
    private static bool IsFinalSigma(Rune[] runes, int at)
    {
        int before = at - 1;
        while (before >= 0 && IsCaseIgnorable(runes[before])) before--;
        if (before < 0 || !IsCased(runes[before])) return false;
        int after = at + 1;
        while (after < runes.Length && IsCaseIgnorable(runes[after])) after++;
        return after == runes.Length || !IsCased(runes[after]);
    }

    private static bool IsCased(Rune r) => Rune.GetUnicodeCategory(r) is UnicodeCategory.UppercaseLetter
        or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter;

    private static bool IsCaseIgnorable(Rune r) => r.Value is '\'' or '.' or ':' or '^' or '`' or 0xB7 or 0x2019
        || Rune.GetUnicodeCategory(r) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark
            or UnicodeCategory.Format or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol;
}
