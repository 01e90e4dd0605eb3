import type { Io } from "./io.js";

/** Asks `question` on stderr and reads one line from stdin: true only for y or yes (any case). */
export async function confirm(question: string, io: Io): Promise<boolean> {
  io.err(question);
  const answer = await readLine(io.stdin);
  return /^y(es)?$/i.test(answer.trim());
}

/** The next line typed (a terminal in cooked mode sends it on Enter); what came before EOF otherwise. */
function readLine(stdin: Io["stdin"]): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    const finish = (line: string) => {
      stdin.off("data", onData);
      stdin.off("end", onEnd);
      stdin.pause();
      resolve(line);
    };
    const onData = (chunk: string | Buffer) => {
      text += chunk.toString();
      const end = text.indexOf("\n");
      // Bounded: a line longer than any answer is not one.
      if (end >= 0 || text.length > 1024) finish(end >= 0 ? text.slice(0, end) : "");
    };
    const onEnd = () => finish(text);
    stdin.on("data", onData);
    stdin.once("end", onEnd);
    stdin.resume();
  });
}
