/*
 * mr-synth: synthetic FHIR R4 test data. Never real patients: names come from
 * lists of common names, phone numbers use the fictional 555 range and the
 * identifiers use SSN area 999, which is never issued.
 *
 *   mr-synth patients N [--seed S] [--start K]
 *
 * writes N Patient resources as NDJSON to stdout with ids p<K..K+N-1>, each
 * zero-padded to 8 digits. Every record is derived from (seed, index) alone,
 * so `--start 5` with N 10 reproduces lines 6-15 of a run from 0.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A string with its length, so that writing it is one memcpy. */
struct str {
    const char *s;
    size_t n;
};

#define S(lit)                                                                 \
    {                                                                          \
        lit, sizeof(lit) - 1                                                   \
    }
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const struct str families[] = {
    S("Smith"),      S("Johnson"),   S("Williams"),  S("Brown"),
    S("Jones"),      S("Garcia"),    S("Miller"),    S("Davis"),
    S("Rodriguez"),  S("Martinez"),  S("Hernandez"), S("Lopez"),
    S("Gonzalez"),   S("Wilson"),    S("Anderson"),  S("Thomas"),
    S("Taylor"),     S("Moore"),     S("Jackson"),   S("Martin"),
    S("Lee"),        S("Perez"),     S("Thompson"),  S("White"),
    S("Harris"),     S("Sanchez"),   S("Clark"),     S("Ramirez"),
    S("Lewis"),      S("Robinson"),  S("Walker"),    S("Young"),
    S("Allen"),      S("King"),      S("Wright"),    S("Scott"),
    S("Torres"),     S("Nguyen"),    S("Hill"),      S("Flores"),
    S("Green"),      S("Adams"),     S("Nelson"),    S("Baker"),
    S("Hall"),       S("Rivera"),    S("Campbell"),  S("Mitchell"),
    S("Carter"),     S("Roberts"),   S("Gomez"),     S("Phillips"),
    S("Evans"),      S("Turner"),    S("Diaz"),      S("Parker"),
    S("Cruz"),       S("Edwards"),   S("Collins"),   S("Reyes"),
    S("Stewart"),    S("Morris"),    S("Morales"),   S("Murphy"),
    S("Cook"),       S("Rogers"),    S("Gutierrez"), S("Ortiz"),
    S("Morgan"),     S("Cooper"),    S("Peterson"),  S("Bailey"),
    S("Reed"),       S("Kelly"),     S("Howard"),    S("Ramos"),
    S("Kim"),        S("Cox"),       S("Ward"),      S("Richardson"),
    S("Watson"),     S("Brooks"),    S("Chavez"),    S("Wood"),
    S("James"),      S("Bennett"),   S("Gray"),      S("Mendoza"),
    S("Ruiz"),       S("Hughes"),    S("Price"),     S("Alvarez"),
    S("Castillo"),   S("Sanders"),   S("Patel"),     S("Myers"),
    S("Long"),       S("Ross"),      S("Foster"),    S("Jimenez"),
    S("Powell"),     S("Jenkins"),   S("Perry"),     S("Russell"),
    S("Sullivan"),   S("Bell"),      S("Coleman"),   S("Butler"),
    S("Henderson"),  S("Barnes"),    S("Gonzales"),  S("Fisher"),
    S("Vasquez"),    S("Simmons"),   S("Romero"),    S("Jordan"),
    S("Patterson"),  S("Alexander"), S("Hamilton"),  S("Graham"),
    S("Reynolds"),   S("Griffin"),   S("Wallace"),   S("Moreno"),
    S("West"),       S("Cole"),      S("Hayes"),     S("Bryant"),
    S("Herrera"),    S("Gibson"),    S("Ellis"),     S("Tran"),
    S("Medina"),     S("Aguilar"),   S("Stevens"),   S("Murray"),
    S("Ford"),       S("Castro"),    S("Marshall"),  S("Owens"),
    S("Harrison"),   S("Fernandez"), S("McDonald"),  S("Woods"),
    S("Washington"), S("Kennedy"),   S("Wells"),     S("Vargas"),
    S("Henry"),      S("Chen"),      S("Freeman"),   S("Webb"),
    S("Tucker"),     S("Guzman"),    S("Burns"),     S("Crawford"),
    S("Olson"),      S("Simpson"),   S("Porter"),    S("Hunter"),
    S("Gordon"),     S("Mendez"),    S("Silva"),     S("Shaw"),
    S("Snyder"),     S("Mason"),     S("Dixon"),     S("Muñoz"),
    S("Hunt"),       S("Hicks"),     S("Holmes"),    S("Palmer"),
    S("Wagner"),     S("Black"),     S("Robertson"), S("Boyd"),
    S("Rose"),       S("Stone"),     S("Salazar"),   S("Fox"),
    S("Warren"),     S("Mills"),     S("Meyer"),     S("Rice"),
    S("Schmidt"),    S("Núñez"),     S("Peña"),      S("Ødegård"),
    S("Müller"),     S("Schröder"),  S("Lefèvre"),   S("Gauthier"),
    S("Dubois"),     S("Böhm"),      S("Åberg"),     S("Håkansson"),
    S("Sørensen"),   S("Kowalski"),  S("Nowak"),     S("Çelik"),
    S("Yılmaz"),     S("Ibáñez"),    S("Ortíz"),     S("O'Brien"),
    S("Dvořák"),
};

static const struct str female_given[] = {
    S("Mary"),      S("Patricia"),  S("Jennifer"),  S("Linda"),
    S("Elizabeth"), S("Barbara"),   S("Susan"),     S("Jessica"),
    S("Sarah"),     S("Karen"),     S("Lisa"),      S("Nancy"),
    S("Betty"),     S("Margaret"),  S("Sandra"),    S("Ashley"),
    S("Kimberly"),  S("Emily"),     S("Donna"),     S("Michelle"),
    S("Carol"),     S("Amanda"),    S("Dorothy"),   S("Melissa"),
    S("Deborah"),   S("Stephanie"), S("Rebecca"),   S("Sharon"),
    S("Laura"),     S("Cynthia"),   S("Kathleen"),  S("Amy"),
    S("Angela"),    S("Shirley"),   S("Anna"),      S("Brenda"),
    S("Pamela"),    S("Emma"),      S("Nicole"),    S("Helen"),
    S("Samantha"),  S("Katherine"), S("Christine"), S("Debra"),
    S("Rachel"),    S("Carolyn"),   S("Janet"),     S("Catherine"),
    S("Maria"),     S("Heather"),   S("Diane"),     S("Ruth"),
    S("Julie"),     S("Olivia"),    S("Joyce"),     S("Virginia"),
    S("Victoria"),  S("Kelly"),     S("Lauren"),    S("Christina"),
    S("Joan"),      S("Evelyn"),    S("Judith"),    S("Megan"),
    S("Andrea"),    S("Cheryl"),    S("Hannah"),    S("Jacqueline"),
    S("Martha"),    S("Gloria"),    S("Teresa"),    S("Ann"),
    S("Sara"),      S("Madison"),   S("Frances"),   S("Kathryn"),
    S("Janice"),    S("Jean"),      S("Abigail"),   S("Alice"),
    S("Julia"),     S("Judy"),      S("Sophia"),    S("Grace"),
    S("Denise"),    S("Amber"),     S("Doris"),     S("Marilyn"),
    S("Danielle"),  S("Beverly"),   S("Zoë"),       S("Chloé"),
    S("Inés"),      S("Léa"),       S("Renée"),     S("Björk"),
    S("Åsa"),       S("Sofía"),     S("Lucía"),     S("Noémie"),
};

static const struct str male_given[] = {
    S("James"),     S("Robert"),  S("John"),        S("Michael"),
    S("David"),     S("William"), S("Richard"),     S("Joseph"),
    S("Thomas"),    S("Charles"), S("Christopher"), S("Daniel"),
    S("Matthew"),   S("Anthony"), S("Mark"),        S("Donald"),
    S("Steven"),    S("Paul"),    S("Andrew"),      S("Joshua"),
    S("Kenneth"),   S("Kevin"),   S("Brian"),       S("George"),
    S("Timothy"),   S("Ronald"),  S("Edward"),      S("Jason"),
    S("Jeffrey"),   S("Ryan"),    S("Jacob"),       S("Gary"),
    S("Nicholas"),  S("Eric"),    S("Jonathan"),    S("Stephen"),
    S("Larry"),     S("Justin"),  S("Scott"),       S("Brandon"),
    S("Benjamin"),  S("Samuel"),  S("Gregory"),     S("Alexander"),
    S("Frank"),     S("Patrick"), S("Raymond"),     S("Jack"),
    S("Dennis"),    S("Jerry"),   S("Tyler"),       S("Aaron"),
    S("Jose"),      S("Adam"),    S("Nathan"),      S("Henry"),
    S("Douglas"),   S("Zachary"), S("Peter"),       S("Kyle"),
    S("Ethan"),     S("Walter"),  S("Noah"),        S("Jeremy"),
    S("Christian"), S("Keith"),   S("Roger"),       S("Terry"),
    S("Gerald"),    S("Harold"),  S("Sean"),        S("Austin"),
    S("Carl"),      S("Arthur"),  S("Lawrence"),    S("Dylan"),
    S("Jesse"),     S("Jordan"),  S("Bryan"),       S("Billy"),
    S("Joe"),       S("Bruce"),   S("Gabriel"),     S("Logan"),
    S("Albert"),    S("Willie"),  S("Alan"),        S("Juan"),
    S("Wayne"),     S("Elijah"),  S("José"),        S("André"),
    S("François"),  S("Jörg"),    S("Søren"),       S("Łukasz"),
    S("Álvaro"),    S("Raúl"),    S("Jérôme"),      S("Ángel"),
};

static const struct str streets[] = {
    S("Main St"),   S("Oak Ave"),   S("Maple Dr"),        S("Cedar Ln"),
    S("Pine St"),   S("Elm St"),    S("Washington Blvd"), S("Lake Rd"),
    S("Hill St"),   S("Park Ave"),  S("River Rd"),        S("Sunset Blvd"),
    S("Church St"), S("Mill Rd"),   S("Spring St"),       S("Highland Ave"),
    S("Forest Dr"), S("Meadow Ln"), S("Walnut St"),       S("Chestnut St"),
};

struct place {
    struct str city;
    struct str state;
    const char *zip3; /* first three digits of the ZIP code */
};

static const struct place places[] = {
    {S("Springfield"), S("IL"), "627"}, {S("Portland"), S("OR"), "972"},
    {S("Madison"), S("WI"), "537"},     {S("Columbus"), S("OH"), "432"},
    {S("Austin"), S("TX"), "787"},      {S("Denver"), S("CO"), "802"},
    {S("Albany"), S("NY"), "122"},      {S("Salem"), S("MA"), "019"},
    {S("Fairview"), S("TN"), "370"},    {S("Riverside"), S("CA"), "925"},
    {S("Greenville"), S("SC"), "296"},  {S("Franklin"), S("PA"), "163"},
    {S("Bristol"), S("CT"), "060"},     {S("Clinton"), S("IA"), "527"},
    {S("Georgetown"), S("KY"), "403"},  {S("Santa Fe"), S("NM"), "875"},
};

static const int month_days[12] = {31, 28, 31, 30, 31, 30,
                                   31, 31, 30, 31, 30, 31};

/* xorshift64*: fast, and plenty for test data. */
static uint64_t rng_next(uint64_t *st)
{
    uint64_t x = *st;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *st = x;
    return x * UINT64_C(2685821657736338717);
}

/* Uniform enough in [0, n) for n far below 2^32. */
static uint32_t rng_below(uint64_t *st, uint32_t n)
{
    return (uint32_t)(((rng_next(st) >> 32) * (uint64_t)n) >> 32);
}

/* splitmix64, to turn (seed, index) into a well-mixed, nonzero state. */
static uint64_t mix_seed(uint64_t seed, uint64_t index)
{
    uint64_t z = seed + (index + 1) * UINT64_C(0x9E3779B97F4A7C15);

    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    z ^= z >> 31;
    return z ? z : UINT64_C(0x2545F4914F6CDD1D);
}

/*
 * Output buffer: records are appended with memcpy and digit loops, then
 * flushed with write(2) in large chunks; stdio would cost more per field.
 */
#define OUT_SIZE (1u << 20)
#define RECORD_MAX 1024u

static char out_buf[OUT_SIZE];
static size_t out_len;

static int flush_out(void)
{
    size_t off = 0;

    while (off < out_len) {
        ssize_t n = write(STDOUT_FILENO, out_buf + off, out_len - off);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        off += (size_t)n;
    }
    out_len = 0;
    return 0;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_str(char *p, const struct str *s)
{
    return put(p, s->s, s->n);
}

/* Writes v as exactly `width` decimal digits, zero-padded. */
static char *put_digits(char *p, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

/* Writes v in decimal without padding. */
static char *put_uint(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

enum gender { G_FEMALE, G_MALE, G_OTHER, G_UNKNOWN };

/* Roughly what a registration desk sees: half and half, a few others. */
static enum gender pick_gender(uint64_t *st)
{
    uint32_t r = rng_below(st, 1000);

    if (r < 500)
        return G_FEMALE;
    if (r < 985)
        return G_MALE;
    if (r < 990)
        return G_OTHER;
    return G_UNKNOWN;
}

static const struct str *pick_given(uint64_t *st, enum gender g)
{
    if (g == G_OTHER || g == G_UNKNOWN)
        g = rng_below(st, 2) ? G_MALE : G_FEMALE;
    if (g == G_FEMALE)
        return &female_given[rng_below(st, COUNT(female_given))];
    return &male_given[rng_below(st, COUNT(male_given))];
}

static const struct str gender_codes[] = {
    S("female"),
    S("male"),
    S("other"),
    S("unknown"),
};

/* Writes one Patient resource and its newline; at most RECORD_MAX bytes. */
static char *put_patient(char *p, uint64_t seed, uint64_t index)
{
    uint64_t st = mix_seed(seed, index);
    enum gender g = pick_gender(&st);
    const struct str *family = &families[rng_below(&st, COUNT(families))];
    const struct str *given1 = pick_given(&st, g);
    const struct str *given2 = NULL;
    int year, month, day, mdays;
    const struct place *pl;

    if (rng_below(&st, 100) < 40) {
        given2 = pick_given(&st, g);
        if (given2 == given1)
            given2 = NULL;
    }

    year = 1920 + (int)rng_below(&st, 2025 - 1920 + 1);
    month = 1 + (int)rng_below(&st, 12);
    mdays = month_days[month - 1] + (month == 2 && is_leap(year));
    day = 1 + (int)rng_below(&st, (uint32_t)mdays);

    p = PUT_LIT(p, "{\"resourceType\":\"Patient\",\"id\":\"p");
    if (index < 100000000u)
        p = put_digits(p, index, 8);
    else
        p = put_uint(p, index);
    p = PUT_LIT(p, "\",\"name\":[{\"use\":\"official\",\"family\":\"");
    p = put_str(p, family);
    p = PUT_LIT(p, "\",\"given\":[\"");
    p = put_str(p, given1);
    if (given2) {
        p = PUT_LIT(p, "\",\"");
        p = put_str(p, given2);
    }
    p = PUT_LIT(p, "\"]}],\"gender\":\"");
    p = put_str(p, &gender_codes[g]);
    p = PUT_LIT(p, "\",\"birthDate\":\"");
    p = put_digits(p, (uint64_t)year, 4);
    *p++ = '-';
    p = put_digits(p, (uint64_t)month, 2);
    *p++ = '-';
    p = put_digits(p, (uint64_t)day, 2);

    /* +1-555-XXX-XXXX: the 555 code is never assigned to a real line. */
    p = PUT_LIT(p, "\",\"telecom\":[{\"system\":\"phone\",\"value\":\"+1-555-");
    p = put_digits(p, 200 + rng_below(&st, 800), 3);
    *p++ = '-';
    p = put_digits(p, rng_below(&st, 10000), 4);
    p = PUT_LIT(p, "\",\"use\":\"home\"}],\"address\":[{\"use\":\"home\","
                   "\"line\":[\"");
    p = put_uint(p, 1 + rng_below(&st, 9999));
    *p++ = ' ';
    p = put_str(p, &streets[rng_below(&st, COUNT(streets))]);
    pl = &places[rng_below(&st, COUNT(places))];
    p = PUT_LIT(p, "\"],\"city\":\"");
    p = put_str(p, &pl->city);
    p = PUT_LIT(p, "\",\"state\":\"");
    p = put_str(p, &pl->state);
    p = PUT_LIT(p, "\",\"postalCode\":\"");
    p = put(p, pl->zip3, 3);
    p = put_digits(p, rng_below(&st, 100), 2);

    /* Area 999 is never issued as a Social Security number. */
    p = PUT_LIT(p, "\"}],\"identifier\":[{\"system\":"
                   "\"urn:example:synthetic-ssn\",\"value\":\"999-");
    p = put_digits(p, 1 + rng_below(&st, 99), 2);
    *p++ = '-';
    p = put_digits(p, 1 + rng_below(&st, 9999), 4);
    p = PUT_LIT(p, "\"}]}\n");
    return p;
}

static int gen_patients(uint64_t n, uint64_t seed, uint64_t start)
{
    for (uint64_t i = 0; i < n; i++) {
        if (OUT_SIZE - out_len < RECORD_MAX && flush_out() != 0)
            return -1;
        out_len =
            (size_t)(put_patient(out_buf + out_len, seed, start + i) - out_buf);
    }
    return flush_out();
}

static void usage(FILE *f)
{
    fputs("usage: mr-synth patients N [--seed S] [--start K]\n"
          "\n"
          "Write N synthetic FHIR R4 Patient resources as NDJSON to stdout,\n"
          "ids p<K> .. p<K+N-1> zero-padded to 8 digits (K defaults to 0).\n"
          "The same seed (default 1) gives the same records; a record depends\n"
          "only on the seed and its index. Never real patients: common names,\n"
          "+1-555 phone numbers, SSN-style identifiers in area 999.\n",
          f);
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t n, seed = 1, start = 0;

    if (argc >= 2 &&
        (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 3 || strcmp(argv[1], "patients") != 0) {
        usage(stderr);
        return 2;
    }
    if (parse_u64(argv[2], &n) != 0) {
        fprintf(stderr, "mr-synth: N must be a non-negative integer: %s\n",
                argv[2]);
        return 2;
    }
    for (int i = 3; i < argc; i++) {
        uint64_t *dst;

        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--seed") == 0) {
            dst = &seed;
        } else if (strcmp(argv[i], "--start") == 0) {
            dst = &start;
        } else {
            fprintf(stderr, "mr-synth: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
        if (i + 1 >= argc || parse_u64(argv[i + 1], dst) != 0) {
            fprintf(stderr, "mr-synth: %s needs a non-negative integer\n",
                    argv[i]);
            return 2;
        }
        i++;
    }
    if (gen_patients(n, seed, start) != 0) {
        if (errno == EPIPE)
            return 0;
        fprintf(stderr, "mr-synth: write: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
