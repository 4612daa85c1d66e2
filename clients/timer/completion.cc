#include "completion.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace timer::cli {
namespace {

// What a script needs to know of one option or positional argument.
struct Arg {
  std::vector<std::string> names;  // "-v", "--verbose"; empty for a positional.
  std::string value_name;          // "interval", "JOB_ID": shown by zsh.
  std::string description;         // First line only.
  int arity = 0;                   // Words taken after the option; 0 for a flag.
  bool repeatable = false;
  bool file = false;                 // Complete file names.
  std::vector<std::string> choices;  // From an IsMember check.
};

struct Command {
  std::vector<std::string> path;  // {"timer", "job", "status"}
  std::string description;
  std::vector<Arg> options;
  std::vector<Arg> positionals;
  std::vector<Command> subcommands;
};

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

// CLI11 appends each check's description to the type name: "TEXT:{table,json}".
void ReadTypeName(const CLI::Option& opt, Arg* arg) {
  const std::string type = opt.get_type_name();
  // "FILE" as the type name, or ":FILE" from a CLI::ExistingFile check.
  for (absl::string_view part : absl::StrSplit(type, ':')) arg->file |= part == "FILE";
  const size_t open = type.find(":{");
  if (open != std::string::npos && type.back() == '}') {
    arg->choices = absl::StrSplit(type.substr(open + 2, type.size() - open - 3), ',',
                                  absl::SkipEmpty());
  }
}

Command Collect(const CLI::App& app, std::vector<std::string> path) {
  Command cmd;
  cmd.path = std::move(path);
  cmd.description = FirstLine(app.get_description());
  for (const CLI::Option* opt : app.get_options()) {
    Arg arg;
    arg.description = FirstLine(opt->get_description());
    ReadTypeName(*opt, &arg);
    if (opt->get_positional()) {
      arg.value_name = opt->get_name();
      cmd.positionals.push_back(std::move(arg));
      continue;
    }
    for (const std::string& s : opt->get_snames()) arg.names.push_back("-" + s);
    for (const std::string& l : opt->get_lnames()) arg.names.push_back("--" + l);
    if (arg.names.empty()) continue;
    arg.value_name =
        opt->get_lnames().empty() ? opt->get_snames()[0] : opt->get_lnames()[0];
    arg.arity =
        opt->get_items_expected_max() == 0 ? 0 : std::max(1, opt->get_type_size_min());
    arg.repeatable = opt->get_multi_option_policy() == CLI::MultiOptionPolicy::TakeAll;
    cmd.options.push_back(std::move(arg));
  }
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (sub->get_name().empty() || sub->get_disabled()) continue;
    std::vector<std::string> sub_path = cmd.path;
    sub_path.push_back(sub->get_name());
    cmd.subcommands.push_back(Collect(*sub, std::move(sub_path)));
  }
  return cmd;
}

void Walk(const Command& cmd, const std::function<void(const Command&)>& visit) {
  visit(cmd);
  for (const Command& sub : cmd.subcommands) Walk(sub, visit);
}

// ---- bash ----

// The arms of one `case`: keys with the same reply share an arm. Keys and
// words are plain (no quotes inside a word), as CLI11 names are.
class BashCase {
 public:
  void Add(const std::string& key, const std::string& reply) {
    auto it = std::find_if(arms_.begin(), arms_.end(),
                           [&](const auto& arm) { return arm.first == reply; });
    if (it == arms_.end()) it = arms_.insert(arms_.end(), {reply, {}});
    it->second.push_back(absl::StrCat("'", key, "'"));
  }
  std::string Text() const {
    std::string out;
    for (const auto& [reply, keys] : arms_) {
      absl::StrAppend(&out, "    ", absl::StrJoin(keys, "|\\\n    "), ")\n      REPLY='",
                      reply, "' ;;\n");
    }
    return out;
  }

 private:
  std::vector<std::pair<std::string, std::vector<std::string>>> arms_;
};

}  // namespace

std::string BashCompletion(const CLI::App& app) {
  const Command root = Collect(app, {app.get_name()});
  const std::string& prog = root.path[0];
  const std::string fn = absl::StrCat("_", prog);
  BashCase commands, options, arity, values;
  Walk(root, [&](const Command& cmd) {
    const std::string key = absl::StrJoin(cmd.path, " ");
    std::vector<std::string> names;
    for (const Command& sub : cmd.subcommands) names.push_back(sub.path.back());
    if (!names.empty()) commands.Add(key, absl::StrJoin(names, " "));
    names.clear();
    for (const Arg& opt : cmd.options) {
      names.insert(names.end(), opt.names.begin(), opt.names.end());
      for (const std::string& name : opt.names) {
        const std::string opt_key = absl::StrCat(key, " ", name);
        if (opt.arity > 0) arity.Add(opt_key, std::to_string(opt.arity));
        if (opt.file) values.Add(opt_key, "@file");
        if (!opt.choices.empty()) values.Add(opt_key, absl::StrJoin(opt.choices, " "));
      }
    }
    if (!names.empty()) options.Add(key, absl::StrJoin(names, " "));
    if (!cmd.positionals.empty()) {
      const Arg& first = cmd.positionals.front();
      if (first.file) values.Add(key, "@file");
      if (!first.choices.empty()) values.Add(key, absl::StrJoin(first.choices, " "));
    }
  });

  std::string s = absl::StrCat(
      "# bash completion for ", prog, ", generated by `", prog, " completion bash`.\n",
      "# Install for your user (bash-completion loads it on demand):\n",
      "#   mkdir -p ~/.local/share/bash-completion/completions\n", "#   ", prog,
      " completion bash > ~/.local/share/bash-completion/completions/", prog, "\n",
      "# or add to ~/.bashrc:  source <(", prog, " completion bash)\n\n");
  const auto table = [&](const char* name, const char* what, const BashCase& arms,
                         const char* fallback) {
    absl::StrAppend(&s, "# ", what, "\n", fn, "_", name, "() {\n  case \"$1\" in\n",
                    arms.Text(), "    *) REPLY='", fallback, "' ;;\n  esac\n}\n\n");
  };
  table("commands", "A command path (\"timer job\") -> its subcommands.", commands, "");
  table("options", "A command path -> its options.", options, "");
  table("arity", "\"PATH OPTION\" -> how many words the option takes.", arity, "0");
  table("values",
        "\"PATH OPTION\" (or PATH, for its first positional) -> the words it accepts;\n"
        "# @file: a file name.",
        values, "");
  absl::StrAppend(
      &s, R"(# Looks "PATH OPTION" up with the table function $1, then in each parent
# command: options a command does not declare fall through to its parents.
)",
      fn, R"(_inherited() {
  local table=$1 path=$2 opt=$3
  while :; do
    "$table" "$path $opt"
    [[ -n $REPLY && $REPLY != 0 ]] && return
    [[ $path == *' '* ]] || return
    path=${path% *}
  done
}

# Finds the command path and what the word under the cursor is (an option,
# an option's value, a subcommand or a positional) and fills COMPREPLY.
)",
      fn, R"(() {
  local cur="${COMP_WORDS[COMP_CWORD]}" path=')",
      prog, R"(' word opt='' pending=0 npos=0 i REPLY
  COMPREPLY=()
  [[ $cur == = ]] && cur=''
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="${COMP_WORDS[i]}"
    [[ $word == = ]] && continue  # --option=value, split by COMP_WORDBREAKS
    if ((pending > 0)); then
      pending=$((pending - 1))
      continue
    fi
    case "$word" in
      -*=*) ;;
      -*)
        )",
      fn, R"(_inherited )", fn, R"(_arity "$path" "$word"
        pending=${REPLY:-0}
        opt=$word
        ;;
      *)
        )",
      fn, R"(_commands "$path"
        if [[ " $REPLY " == *" $word "* ]]; then
          path="$path $word"
          npos=0
        else
          npos=$((npos + 1))
        fi
        ;;
    esac
  done
  REPLY=''
  if ((pending > 0)); then
    )",
      fn, R"(_inherited )", fn, R"(_values "$path" "$opt"
  elif [[ $cur == -* ]]; then
    )",
      fn, R"(_options "$path"
  elif ((npos == 0)); then
    )",
      fn, R"(_commands "$path"
    [[ -z $REPLY ]] && )",
      fn, R"(_values "$path"
  fi
  if [[ $REPLY == @file ]]; then
    compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
  elif [[ -n $REPLY ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$REPLY" -- "$cur")
  fi
  return 0
}

complete -F )",
      fn, " ", prog, "\n");
  return s;
}

namespace {

// ---- zsh ----

// Text inside a single-quoted zsh word, as an _arguments explanation
// ("[...]", where brackets are escaped) or message (":...:", where colons are).
std::string ZshQuote(const std::string& text) {
  return absl::StrReplaceAll(text, {{"'", "'\\''"}});
}
std::string ZshExplanation(const std::string& text) {
  return ZshQuote(
      absl::StrReplaceAll(text, {{"\\", "\\\\"}, {"[", "\\["}, {"]", "\\]"}}));
}
std::string ZshMessage(const std::string& text) {
  return ZshQuote(absl::StrReplaceAll(text, {{"\\", "\\\\"}, {":", "\\:"}}));
}

std::string ZshFunction(const Command& cmd) {
  std::string name = absl::StrCat("_", absl::StrJoin(cmd.path, "_"));
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

// ":message:action" for one value of an option or a positional.
std::string ZshValue(const Arg& arg, const std::string& message) {
  std::string action = " ";
  if (arg.file) action = "_files";
  if (!arg.choices.empty())
    action = absl::StrCat("(", absl::StrJoin(arg.choices, " "), ")");
  return absl::StrCat(":", ZshMessage(message), ":", action);
}

std::string ZshOptionSpec(const Arg& opt) {
  std::string values;
  for (int i = 0; i < opt.arity; ++i) {
    values += ZshValue(
        opt, opt.arity == 1 ? opt.value_name : absl::StrCat(opt.value_name, " ", i + 1));
  }
  const std::string desc = absl::StrCat("[", ZshExplanation(opt.description), "]");
  std::vector<std::string> names;
  for (const std::string& n : opt.names) {
    // --name=VALUE and --name VALUE both parse (CLI11), one word or two.
    names.push_back(opt.arity == 1 && n.rfind("--", 0) == 0 ? n + "=" : n);
  }
  const std::string star = opt.repeatable ? "*" : "";
  if (names.size() == 1) return absl::StrCat("'", star, names[0], desc, values, "'");
  // '(-v --verbose)'{-v,--verbose}'[...]': one spec per name, each excluding the others.
  return absl::StrCat(
      "'", star.empty() ? absl::StrCat("(", absl::StrJoin(opt.names, " "), ")") : star,
      "'{", absl::StrJoin(names, ","), "}'", desc, values, "'");
}

void ZshCommand(const Command& cmd, std::string* out) {
  for (const Command& sub : cmd.subcommands) ZshCommand(sub, out);
  absl::StrAppend(out, "# ", absl::StrJoin(cmd.path, " "), ": ", cmd.description, "\n",
                  ZshFunction(cmd), "() {\n");
  std::vector<std::string> specs;
  for (const Arg& opt : cmd.options) specs.push_back(ZshOptionSpec(opt));
  if (cmd.subcommands.empty()) {
    for (const Arg& pos : cmd.positionals) {
      specs.push_back(absl::StrCat("'", ZshValue(pos, pos.value_name), "'"));
    }
    absl::StrAppend(out, "  _arguments -s -S \\\n    ", absl::StrJoin(specs, " \\\n    "),
                    "\n}\n\n");
    return;
  }
  specs.push_back("': :->command'");
  specs.push_back("'*:: :->args'");
  absl::StrAppend(out, "  local curcontext=\"$curcontext\" state line\n",
                  "  typeset -A opt_args\n", "  _arguments -C -s -S \\\n    ",
                  absl::StrJoin(specs, " \\\n    "), "\n", "  case $state in\n",
                  "    command)\n", "      local -a commands=(\n");
  for (const Command& sub : cmd.subcommands) {
    absl::StrAppend(out, "        '", sub.path.back(), ":",
                    ZshQuote(absl::StrReplaceAll(sub.description, {{":", "\\:"}})),
                    "'\n");
  }
  absl::StrAppend(out, "      )\n", "      _describe -t commands '",
                  absl::StrJoin(cmd.path, " "), " command' commands\n", "      ;;\n",
                  "    args)\n",
                  "      curcontext=\"${curcontext%:*:*}:", absl::StrJoin(cmd.path, "-"),
                  "-$line[1]:\"\n", "      case $line[1] in\n");
  for (const Command& sub : cmd.subcommands) {
    absl::StrAppend(out, "        ", sub.path.back(), ") ", ZshFunction(sub), " ;;\n");
  }
  absl::StrAppend(out, "      esac\n", "      ;;\n", "  esac\n", "}\n\n");
}

}  // namespace

std::string ZshCompletion(const CLI::App& app) {
  const Command root = Collect(app, {app.get_name()});
  const std::string& prog = root.path[0];
  std::string s = absl::StrCat(
      "#compdef ", prog, "\n", "# zsh completion for ", prog, ", generated by `", prog,
      " completion zsh`.\n", "# Install for your user:\n", "#   mkdir -p ~/.zfunc && ",
      prog, " completion zsh > ~/.zfunc/_", prog, "\n",
      "#   and in ~/.zshrc, before compinit:  fpath=(~/.zfunc $fpath)\n",
      "# or, after compinit in ~/.zshrc:  source <(", prog, " completion zsh)\n\n");
  ZshCommand(root, &s);
  // Autoloaded from $fpath, this file is the function's body; sourced, it
  // registers the function.
  absl::StrAppend(&s, "if [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n  ",
                  ZshFunction(root), " \"$@\"\nelse\n  compdef ", ZshFunction(root), " ",
                  prog, "\nfi\n");
  return s;
}

}  // namespace timer::cli
