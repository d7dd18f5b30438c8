/**
 * Turns per subject inside one object: work for a subject starts only after the previous work for
 * it released its turn (in arrival order); other subjects go on in parallel. A turn is released by
 * the work's `release()` or, at the latest, when the work settles (resolved or thrown).
 */
export class SubjectLocks {
  /** The promise the next arrival waits for, per subject with work queued or running. */
  private readonly tails = new Map<string, Promise<void>>();

  get held(): number {
    return this.tails.size;
  }

  async exclusive<T>(subject: string, work: (release: () => void) => Promise<T>): Promise<T> {
    const previous = this.tails.get(subject);
    let release = () => {};
    const turn = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous === undefined ? turn : previous.then(() => turn);
    this.tails.set(subject, tail);
    const done = () => {
      release();
      if (this.tails.get(subject) === tail) this.tails.delete(subject);
    };
    try {
      if (previous !== undefined) await previous;
      return await work(done);
    } finally {
      done();
    }
  }
}
