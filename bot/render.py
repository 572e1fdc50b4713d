"""Every text lien writes, in English and French. Member-supplied strings go through `safe()` first."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from bot.gate import neutralise

#: The longest message lien sends in one piece: under Discord's 2000 characters (Matrix allows more), with room for
#: the "(12/34) " of a numbered page.
PAGE_LIMIT = 1900

_TEXTS: dict[str, dict[str, str]] = {
    "nudge1": {
        "en": "This question is still open. Can anyone help?",
        "fr": "Cette question attend toujours une réponse. Quelqu'un peut aider ?",
    },
    "nudge2": {
        "en": "{mentions}: you may be able to help with this question ({reasons}). `{prefix} why` says why you.",
        "fr": "{mentions} : vous pourriez aider sur cette question ({reasons}). `{prefix} why` dit pourquoi vous.",
    },
    "nudge2_nobody": {
        "en": "This question is still waiting for an answer. If you know a little, a partial answer helps too.",
        "fr": "Cette question attend encore. Une réponse partielle aide aussi, si vous en savez un peu.",
    },
    "nudge3": {
        "en": "Your question has no answer yet. Tips that often help: say what you tried and what happened, "
              "add the exact error or version, and keep it to one question. Editing it or replying in its thread "
              "brings it back to people's attention.",
        "fr": "Votre question n'a pas encore de réponse. Ce qui aide souvent : dire ce que vous avez essayé et ce "
              "qui s'est passé, ajouter l'erreur exacte ou la version, et poser une seule question. La modifier ou "
              "répondre dans son fil la remet sous les yeux de tous.",
    },
    "reason_asker_helped": {"en": "{asker} helped you before", "fr": "{asker} vous a aidé·e avant"},
    "reason_helped_asker": {"en": "you helped {asker} before", "fr": "vous avez aidé {asker} avant"},
    "reason_room_helper": {"en": "you help often in this room", "fr": "vous aidez souvent ici"},
    "reason_opted_in": {"en": "you offered to help here", "fr": "vous vous êtes proposé·e pour aider ici"},
    "refuse_mass": {
        "en": "lien does not {what}. Messages to many people at once feel like spam and wear a community out. "
              "Instead: post it once in an announcements room people chose to follow, or talk to a few people "
              "who would care.",
        "fr": "lien ne fait pas cela ({what}). Les messages à beaucoup de gens à la fois ressemblent à du spam et "
              "usent une communauté. À la place : publiez-le une fois dans un salon d'annonces que les gens ont "
              "choisi de suivre, ou parlez-en à quelques personnes concernées.",
    },
    "refuse_too_many": {
        "en": "lien addresses at most {n} people at once, so that nobody is treated as a target.",
        "fr": "lien s'adresse à {n} personnes au plus à la fois, pour que personne ne soit une cible.",
    },
    "refuse_admin": {
        "en": "Only the community's admins can do that.",
        "fr": "Seuls les admins de la communauté peuvent faire cela.",
    },
    "refuse_dm_settings": {
        "en": "Community settings can't be changed from a private conversation; use the command in the community.",
        "fr": "Les réglages de la communauté ne se changent pas en privé ; utilisez la commande dans la communauté.",
    },
    "refuse_rate": {
        "en": "You're sending commands quickly; lien will listen again in a minute.",
        "fr": "Vous envoyez beaucoup de commandes ; lien écoutera de nouveau dans une minute.",
    },
    "unknown_command": {
        "en": "I don't know the command `{name}`. `{prefix} help` lists what I can do.",
        "fr": "Je ne connais pas la commande `{name}`. `{prefix} help` liste ce que je sais faire.",
    },
    "bad_args": {"en": "Usage: `{prefix} {usage}`", "fr": "Utilisation : `{prefix} {usage}`"},
    "policy": {
        "en": "lien will never: message, mention or invite many people at once; ping @everyone, @here, @room or "
              "roles; mention more than {n} people in one message; DM anyone who did not allow it; store message "
              "text; keep your data after `forget-me`. It nudges a few well-chosen people, with consent, and "
              "explains why.",
        "fr": "lien ne fera jamais : écrire, mentionner ou inviter beaucoup de gens à la fois ; mentionner "
              "@everyone, @here, @room ou des rôles ; mentionner plus de {n} personnes dans un message ; écrire "
              "en privé à qui ne l'a pas permis ; stocker le texte des messages ; garder vos données après "
              "`forget-me`. Il relance quelques personnes choisies, avec leur accord, et explique pourquoi.",
    },
    "help": {
        "en": "Commands: unanswered [room], solved [question], not-a-question [question], helper on|off [room], "
              "optout, optin, dms on|off, credit on|off, why [question], health [room], mydata, forget-me, policy. "
              "Admins: pause, resume, "
              "config show, config reload.",
        "fr": "Commandes : unanswered [salon], solved [question], not-a-question [question], helper on|off "
              "[salon], optout, optin, dms on|off, credit on|off, why [question], health [salon], mydata, forget-me, "
              "policy. Admins : pause, "
              "resume, config show, config reload.",
    },
    "ok": {"en": "Done.", "fr": "C'est fait."},
    "credit_on": {"en": "The weekly digest may thank you by name (it never mentions anyone).",
                  "fr": "Le résumé de la semaine pourra vous remercier par votre nom (il ne mentionne personne)."},
    "credit_off": {"en": "The weekly digest won't name you.", "fr": "Le résumé de la semaine ne vous nommera pas."},
    "solved_ok": {"en": "Marked as solved. Thank you!", "fr": "Marquée comme résolue. Merci !"},
    "withdrawn_ok": {"en": "Understood, I won't track that one.", "fr": "Compris, je ne la suis plus."},
    "no_question": {"en": "I found no question of yours to apply that to.",
                    "fr": "Je ne trouve pas de question de vous à laquelle appliquer cela."},
    "unanswered_none": {"en": "No open questions here. Nice work, everyone.",
                        "fr": "Aucune question en attente ici. Beau travail à tous."},
    "unanswered_list": {"en": "Oldest open questions:\n{items}", "fr": "Questions en attente, les plus anciennes "
                        "d'abord :\n{items}"},
    "helper_on": {"en": "Thanks! You may be asked (rarely) about questions {where} that nobody answered.",
                  "fr": "Merci ! On pourra (rarement) vous signaler des questions {where} restées sans réponse."},
    "helper_off": {"en": "You won't be asked to help {where} any more.",
                   "fr": "On ne vous demandera plus d'aider {where}."},
    "where_room": {"en": "in this room", "fr": "dans ce salon"},
    "where_all": {"en": "in this community", "fr": "dans cette communauté"},
    "optout": {"en": "lien will never mention or message you. You can still ask questions. `{prefix} optin` undoes "
                     "it.", "fr": "lien ne vous mentionnera ni ne vous écrira plus. Vous pouvez toujours poser des "
                     "questions. `{prefix} optin` annule cela."},
    "optin": {"en": "Welcome back: lien may mention you again if you offered to help.",
              "fr": "Bon retour : lien pourra de nouveau vous mentionner si vous vous êtes proposé·e pour aider."},
    "dms_on": {"en": "lien may send you private advice about your own questions.",
               "fr": "lien pourra vous envoyer des conseils privés sur vos propres questions."},
    "dms_off": {"en": "lien won't send you private messages.", "fr": "lien ne vous écrira pas en privé."},
    "why_none": {"en": "lien has not mentioned anyone about that question.",
                 "fr": "lien n'a mentionné personne au sujet de cette question."},
    "why": {"en": "For question {question}, lien mentioned:\n{items}",
            "fr": "Pour la question {question}, lien a mentionné :\n{items}"},
    "mydata": {"en": "What lien stores about you:\n{items}", "fr": "Ce que lien garde sur vous :\n{items}"},
    # The table name and count stay machine-readable in both languages: "- table: N ...".
    "mydata_rows": {"en": "- {table}: {n} rows, all with {same}; one line each: {columns}",
                    "fr": "- {table}: {n} lignes, toutes avec {same} ; une ligne chacune : {columns}"},
    "forgotten": {"en": "Everything lien stored about you is deleted: {items}.",
                  "fr": "Tout ce que lien gardait sur vous est effacé : {items}."},
    "paused": {"en": "Nudges are paused in this community until `{prefix} resume`.",
               "fr": "Les relances sont en pause dans cette communauté jusqu'à `{prefix} resume`."},
    "resumed": {"en": "Nudges are back on.", "fr": "Les relances reprennent."},
    "join_wave": {"en": "{n} members joined within {minutes} minutes: nudges are frozen in this community until an "
                        "admin says `{prefix} resume`.",
                  "fr": "{n} membres sont arrivés en {minutes} minutes : les relances sont gelées dans cette "
                        "communauté jusqu'à ce qu'un admin dise `{prefix} resume`."},
    "config_reloaded": {"en": "Configuration reloaded.", "fr": "Configuration rechargée."},
    "config_bad": {"en": "The configuration file has problems, so the current one stays:\n{problem}",
                   "fr": "Le fichier de configuration a des problèmes ; l'actuel reste en place :\n{problem}"},
    "internal_error": {"en": "Something went wrong on my side; the admins can find details in lien's log.",
                       "fr": "Un problème est survenu de mon côté ; les admins trouveront les détails dans le "
                             "journal de lien."},
    # -- the guard's reports and warnings --
    "warn_flood": {
        "en": "Please slow down a little: many messages in a few seconds make the room hard to follow.",
        "fr": "Doucement, s'il vous plaît : beaucoup de messages en quelques secondes rendent le salon difficile à "
              "suivre.",
    },
    "warn_duplicate": {
        "en": "Please post a message once: repeating it does not bring answers faster.",
        "fr": "Merci de ne publier un message qu'une fois : le répéter n'apporte pas de réponse plus vite.",
    },
    "warn_mass_mention": {
        "en": "Please don't ping groups or many people at once; ask here and those who can help will answer.",
        "fr": "Merci de ne pas mentionner des groupes ou beaucoup de personnes à la fois ; demandez ici et ceux qui "
              "peuvent aider répondront.",
    },
    "warn_invite_link": {
        "en": "Welcome! New members can't share invite links in their first minutes here; a moderator can help "
              "if it matters.",
        "fr": "Bienvenue ! Les nouveaux membres ne peuvent pas partager de liens d'invitation dans leurs premières "
              "minutes ici ; un modérateur peut aider si c'est important.",
    },
    "warn_link_burst": {
        "en": "That's a lot of links at once; please share a few, with a word on why they matter.",
        "fr": "Cela fait beaucoup de liens d'un coup ; partagez-en quelques-uns, en disant pourquoi ils comptent.",
    },
    "timeout_note": {"en": "Timed out for {minutes} minutes.", "fr": "Exclusion temporaire de {minutes} minutes."},
    "not_done_timeout": {"en": "lien could not time out {who} ({why}). A moderator may want to step in.",
                         "fr": "lien n'a pas pu exclure temporairement {who} ({why}). Un·e modérateur·ice peut "
                               "vouloir intervenir."},
    "not_done_delete": {"en": "lien could not delete the message {message} ({why}).",
                        "fr": "lien n'a pas pu supprimer le message {message} ({why})."},
    "hit_flood": {"en": "sent {count} messages in {seconds} s (limit {limit})",
                  "fr": "a envoyé {count} messages en {seconds} s (limite {limit})"},
    "hit_duplicate": {"en": "sent the same message {count} times in {seconds} s (limit {limit})",
                      "fr": "a envoyé le même message {count} fois en {seconds} s (limite {limit})"},
    "hit_mass_mention_group": {"en": "pinged a whole group (everyone, here, room or a role)",
                               "fr": "a mentionné tout un groupe (everyone, here, room ou un rôle)"},
    "hit_mass_mention_message": {"en": "mentioned {count} people in one message (limit {limit})",
                                 "fr": "a mentionné {count} personnes dans un message (limite {limit})"},
    "hit_mass_mention_window": {"en": "mentioned {count} people in {seconds} s (limit {limit})",
                                "fr": "a mentionné {count} personnes en {seconds} s (limite {limit})"},
    "hit_invite_link": {"en": "posted an invite link soon after joining",
                        "fr": "a posté un lien d'invitation peu après son arrivée"},
    "hit_link_burst": {"en": "posted {count} links in {seconds} s (limit {limit})",
                       "fr": "a posté {count} liens en {seconds} s (limite {limit})"},
    "step_warn": {"en": "warn them", "fr": "l'avertir"},
    "step_delete": {"en": "delete those messages", "fr": "supprimer ces messages"},
    "step_timeout": {"en": "delete those messages and time them out for {minutes} minutes",
                     "fr": "supprimer ces messages et l'exclure {minutes} minutes"},
    "would": {"en": "Observe mode: lien would {step} (strike {n}) but takes no action.",
              "fr": "Mode observation : lien devrait {step} (avertissement n° {n}) mais ne fait rien."},
    "did": {"en": "lien chose to {step} (strike {n}).", "fr": "lien a choisi de {step} (avertissement n° {n})."},
    "report": {"en": "Guard: {who} {what}. Messages: {messages}. {outcome}",
               "fr": "Garde : {who} {what}. Messages : {messages}. {outcome}"},
    "strict_note": {"en": "(Raid mode: stricter limits for members who joined recently.)",
                    "fr": "(Mode raid : limites plus strictes pour les membres arrivés récemment.)"},
    "why_join_wave": {"en": "{n} members joined within {minutes} minutes",
                      "fr": "{n} membres sont arrivés en {minutes} minutes"},
    "why_hits": {"en": "{n} members tripped the guard within {minutes} minutes",
                 "fr": "{n} membres ont déclenché la garde en {minutes} minutes"},
    "raid_start": {
        "en": "Raid mode is on: {why}. Members who joined in the last {recent} minutes get stricter limits and "
              "nudges are frozen. It ends after {quiet} quiet minutes, or when an admin says `{prefix} end-raid`. "
              "`{prefix} pardon MEMBER` clears a member's strikes.",
        "fr": "Mode raid activé : {why}. Les membres arrivés depuis moins de {recent} minutes ont des limites plus "
              "strictes et les relances sont gelées. Il prend fin après {quiet} minutes calmes, ou quand un admin "
              "dit `{prefix} end-raid`. `{prefix} pardon MEMBRE` efface les avertissements d'un membre.",
    },
    "end_quiet": {"en": "Raid mode is over after {quiet} quiet minutes: normal limits again, nudges resume.",
                  "fr": "Fin du mode raid après {quiet} minutes calmes : limites normales, les relances reprennent."},
    "end_admin": {"en": "Raid mode ended by an admin: normal limits again, nudges resume.",
                  "fr": "Mode raid arrêté par un admin : limites normales, les relances reprennent."},
}


def text(key: str, lang: str, **values: object) -> str:
    """The text `key` in `lang` (falling back to English), with `values` filled in."""
    forms = _TEXTS[key]
    return forms.get(lang, forms["en"]).format(**values)


def safe(value: str, limit: int = 200) -> str:
    """A member-supplied string made safe to repeat: no live mentions, no invisible characters, bounded length."""
    value = _inert(value)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _inert(value: str) -> str:
    return neutralise(value).replace("<@", "<\uff20")


def pages(value: str, limit: int = PAGE_LIMIT) -> list[str]:
    """A long text made safe (as `safe`) and cut, whole, into messages of at most `limit` characters.

    Cuts fall between lines (a line longer than a page is cut inside); several pages are numbered "(1/3) ".
    """
    value = _inert(value)
    if len(value) <= limit:
        return [value]
    room = limit - len("(9999/9999) ")
    out: list[str] = []
    page = ""
    for line in value.split("\n"):
        while len(line) > room:  # too long for any page: cut it where it must be
            if page:
                out.append(page)
            page, line = line[:room], line[room:]
        if page and len(page) + 1 + len(line) > room:
            out.append(page)
            page = line
        else:
            page = f"{page}\n{line}" if page else line
    out.append(page)
    return [f"({i}/{len(out)}) {p}" for i, p in enumerate(out, 1)]


def table_lines(table: str, rows: Sequence[Mapping[str, object]], lang: str = "en") -> list[str]:
    """A table's rows for `mydata`, all of them: the values shared by every row once, then one line per row."""
    if len(rows) == 1:
        return [f"- {table}: 1 {_json(dict(rows[0]))}"]
    columns = list(rows[0])
    same = {c: rows[0][c] for c in columns if all(r.get(c) == rows[0][c] for r in rows)}
    varying = [c for c in columns if c not in same]
    head = text("mydata_rows", lang, table=table, n=len(rows), same=_json(same), columns=_json(varying))
    return [head, *(f"  {_json([r.get(c) for c in varying])}" for r in rows)]


def _json(value: object) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def mention(member: str) -> str:
    """The neutral mention token; adapters render it as the platform's mention."""
    return f"<@{member}>"


def question_link(room: str, question: str) -> str:
    """A neutral link token to a question; adapters render it as a platform link (the console prints it)."""
    return f"<link:{room}/{question}>"
